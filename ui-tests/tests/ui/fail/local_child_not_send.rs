// A scope run by `tokio::spawn` must be `Send`, and so must its local
// children: one that holds an `Rc` across an await is refused.
use std::rc::Rc;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let data = vec![1, 2, 3];
        tokio::spawn(async move {
            let data = &data;
            nursery::scope_local(|_n, local| async move {
                local.spawn(async move {
                    let shared = Rc::new(data.len());
                    tokio::task::yield_now().await;
                    Ok::<_, ()>(*shared)
                });
                Ok(())
            })
            .await
        });
    });
}
