// The scope future holds its local children, and so may not outlive what
// they borrow.
async fn checks() -> Result<(), nursery::Error<()>> {
    let scope = {
        let data = vec![1, 2, 3];
        let data = &data;
        nursery::scope_local(|_n, local| async move {
            local.spawn(async move { Ok::<_, ()>(data.len()) });
            Ok(())
        })
    };
    scope.await
}

fn main() {
    drop(checks());
}
