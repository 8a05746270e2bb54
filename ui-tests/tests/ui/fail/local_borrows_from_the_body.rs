// A local child may borrow what outlives the scope call, not what lives
// only inside the scope's body.
async fn checks() -> Result<(), nursery::Error<()>> {
    nursery::scope_local(|_n, local| async move {
        let inner = vec![1, 2, 3];
        let inner = &inner;
        local.spawn(async move { Ok::<_, ()>(inner.len()) });
        Ok(())
    })
    .await
}

fn main() {
    drop(checks());
}
