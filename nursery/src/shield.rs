//! [`shield`]: code that runs to completion even when its scope is
//! cancelled (Trio's shielded cancel scope).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context;
use crate::scope::{Scope, Who};
use crate::sync::Arc;

/// Runs `future` to completion even if its scope is cancelled meanwhile:
/// by a failure, its deadline, [`Nursery::cancel`](crate::Nursery::cancel)
/// or a cancel from outside.
///
/// Inside the shield the scope's cancel is not seen:
/// [`cancelled`](crate::cancelled()) stays pending, [`check`](crate::check())
/// returns `Ok` and [`cause`](crate::cause()) `None`; the scope does not
/// abort the child (or drop the body, or the local child) that is inside,
/// even past its [`grace`](crate::Builder::grace) period, and waits for it
/// (G1). Once the shield ends, the child sees the cancel as usual: aborted
/// at its next await if its grace is over. A scope opened inside a shield
/// is not reached by cancels or deadlines from above either.
///
/// For cleanup that must not be cut short: committing or rolling back a
/// transaction, flushing a buffer, telling a peer goodbye. A shield bounds
/// nothing by itself: wrap the future in [`tokio::time::timeout`] to bound
/// it. Dropping the scope's future still drops everything at once, shields
/// included (G7): nothing can make a drop wait.
///
/// A shield entered after the scope has already aborted its children (its
/// grace period over, or none) comes too late: the child is aborted at its
/// next await all the same. Enter it while the child still runs, in the
/// grace period or before the cancel. Outside any scope, `shield` only
/// runs the future.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
///
/// let result = nursery::Nursery::builder()
///     .grace(Duration::from_millis(10))
///     .scope(|n| async move {
///         let committed = n.spawn(async {
///             nursery::cancelled().await;
///             // Cleanup that takes longer than the grace period: shielded,
///             // it is not aborted, and the scope waits for it.
///             nursery::shield(async {
///                 assert_eq!(nursery::check(), Ok(()));
///                 tokio::time::sleep(Duration::from_millis(50)).await;
///             })
///             .await;
///             Ok::<_, String>("rolled back")
///         });
///         n.spawn(async { Err::<(), _>("a sibling failed".to_owned()) });
///         let _ = committed.await;
///         Ok(())
///     })
///     .await;
/// assert_eq!(result.unwrap_err().error().map(String::as_str), Some("a sibling failed"));
/// # }
/// ```
pub fn shield<F: Future>(future: F) -> impl Future<Output = F::Output> {
    Shield {
        future,
        entered: Vec::new(),
        looked: false,
    }
}

pin_project! {
    /// The future [`shield`] returns.
    struct Shield<F> {
        #[pin]
        future: F,
        // Who the shield protects from which scope's abort, once entered:
        // the child that runs it in its scope, then, up the tree, whatever
        // runs each scope in the scope around it.
        entered: Vec<(Arc<Scope>, Who)>,
        looked: bool,
    }

    impl<F> PinnedDrop for Shield<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its future ended: the shield is left all the same.
            leave(this.project().entered);
        }
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.looked {
            // Entered at the first poll, in whichever child runs it.
            *this.looked = true;
            let mut scope = context::current();
            let mut who = context::who_now();
            while let (Some(inside), Some(running)) = (scope, who) {
                inside.enter_shield(running);
                who = inside.hosted_as;
                scope = inside.parent().cloned();
                this.entered.push((inside, running));
            }
        }
        let future = this.future;
        let polled = context::shielded(|| future.poll(cx));
        if polled.is_ready() {
            leave(this.entered);
        }
        polled
    }
}

/// Leaves the shield in every scope it was entered in, innermost first.
fn leave(entered: &mut Vec<(Arc<Scope>, Who)>) {
    for (scope, who) in entered.drain(..) {
        scope.leave_shield(who);
    }
}
