//! Panic payloads and where a panic happened.

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Where a panic happened and what it said, as [`catch_panic_site`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicSite {
    /// The panic's message (see [`panic_message`]).
    pub message: String,
    /// `file:line` of the panic, as the panic hook reported it (the caller's
    /// line for a `#[track_caller]` function).
    pub location: String,
}

std::thread_local! {
    /// Set while [`catch_panic_site`] runs on this thread: the location of
    /// the last panic here.
    static PANIC_SITE: std::cell::RefCell<Option<Option<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` and, if it panics, returns where and with what message instead
/// of unwinding further. The panic hook is wrapped once per process: panics
/// on other threads, or outside this function, go to the previous hook as
/// before, so tests running in parallel are not disturbed.
pub fn catch_panic_site<R>(f: impl FnOnce() -> R) -> Result<R, PanicSite> {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|location| format!("{}:{}", location.file(), location.line()));
            let captured = PANIC_SITE.with(|site| match site.try_borrow_mut() {
                Ok(mut site) if site.is_some() => {
                    *site = Some(location);
                    true
                }
                _ => false,
            });
            if !captured {
                previous(info);
            }
        }));
    });
    PANIC_SITE.with(|site| *site.borrow_mut() = Some(None));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let location = PANIC_SITE.with(|site| site.borrow_mut().take()).flatten();
    result.map_err(|payload| PanicSite {
        message: panic_message(&*payload),
        location: location.unwrap_or_default(),
    })
}
