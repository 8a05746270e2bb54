// Local children borrow what outlives the scope call, beside a parallel
// child, in a scope run by `tokio::spawn` (so the scope future is `Send`).
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let total = runtime.block_on(async {
        let words = vec!["a".to_owned(), "bb".to_owned()];
        let task = tokio::spawn(async move {
            let words = &words;
            nursery::Nursery::builder()
                .limit(2)
                .scope_local(|n, local| async move {
                    let parallel = n.spawn(async { Ok(10) });
                    let lengths: Vec<nursery::LocalHandle<'_, usize>> = words
                        .iter()
                        .map(|word| local.spawn(async move { Ok::<_, ()>(word.len()) }))
                        .collect();
                    let mut total = parallel.await.unwrap();
                    for length in lengths {
                        total += length.await.unwrap();
                    }
                    Ok(total)
                })
                .await
        });
        task.await.unwrap()
    });
    assert_eq!(total, Ok(13));
}
