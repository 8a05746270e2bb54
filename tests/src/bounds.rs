//! Bounded waits: every test that awaits something that should end fails, rather than hangs, if it does not.

/// How long [`within`] waits for something that should end: far beyond
/// what any passing test takes, so only a hang reaches it.
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `future`, failing the test with "still running after 10 s:
/// `what`" if it has not finished within [`BOUND`] of real time: a scope
/// that should end but does not (a broken cancel) fails the test instead
/// of hanging the suite.
///
/// The bound is real time, kept by a thread of its own, not tokio's clock:
/// on a paused clock (`start_paused = true`) tokio's time jumps ahead
/// whenever the runtime is idle, so a `tokio::time::timeout` would cut
/// short a test that sleeps through a virtual hour, and would fire at
/// once, not after 10 s, on a hang. Real time needs no timer on the
/// runtime either.
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    within_for(BOUND, what, future).await
}

/// [`within`] with a bound of `limit` instead of [`BOUND`], for work that
/// is slow by design (tens of thousands of nested scopes in a debug build).
pub async fn within_for<F: std::future::Future>(
    limit: std::time::Duration,
    what: &str,
    future: F,
) -> F::Output {
    let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
    // Dropped when this future ends (or is dropped): the watchdog then
    // stops waiting at once.
    let (_done, done) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("nursery-tests-within".to_owned())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
                let _ = expired_tx.send(());
            }
        })
        .expect("within: failed to start the watchdog thread");
    tokio::select! {
        biased;
        output = future => output,
        Ok(()) = expired => panic!("still running after {} s: {what}", limit.as_secs_f64()),
    }
}
