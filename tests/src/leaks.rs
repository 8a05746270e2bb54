//! Leaks, dumps and the runtime's own task count.

/// Every [`nursery::Leak`] reported in this test binary, from a hook set
/// once with [`nursery::set_leak_hook`].
///
/// The hook is process-wide and tests run in parallel, so there is one log
/// for all of them: each test picks out its own leaks by something only it
/// has (a task name, a spawn location, a scope name).
#[derive(Debug)]
pub struct LeakLog {
    leaks: std::sync::Mutex<Vec<nursery::Leak>>,
    notify: tokio::sync::Notify,
}

impl LeakLog {
    /// The log, with the hook set the first time it is asked for.
    pub fn get() -> &'static LeakLog {
        static LOG: std::sync::OnceLock<&'static LeakLog> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log: &'static LeakLog = Box::leak(Box::new(LeakLog {
                leaks: std::sync::Mutex::new(Vec::new()),
                notify: tokio::sync::Notify::new(),
            }));
            nursery::set_leak_hook(move |leak| {
                log.leaks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(leak.clone());
                log.notify.notify_waiters();
            });
            log
        })
    }

    /// The leaks reported so far that `mine` picks out.
    pub fn matching(&self, mine: impl Fn(&nursery::Leak) -> bool) -> Vec<nursery::Leak> {
        self.leaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|leak| mine(leak))
            .cloned()
            .collect()
    }

    /// Waits until at least `n` of the reported leaks are picked out by
    /// `mine`, or `limit` has passed; returns those found. Needs the
    /// runtime's timer, running (not paused).
    pub async fn wait_for(
        &self,
        n: usize,
        limit: std::time::Duration,
        mine: impl Fn(&nursery::Leak) -> bool,
    ) -> Vec<nursery::Leak> {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a report in between still wakes us.
            notified.as_mut().enable();
            let found = self.matching(&mine);
            if found.len() >= n || tokio::time::Instant::now() >= give_up {
                return found;
            }
            let _ = tokio::time::timeout_at(give_up, notified).await;
        }
    }
}

/// The lines of one root scope's tree in a printed [`nursery::Dump`]: from
/// the line `scope `root` opened at ...` up to the next root.
///
/// Panics if the dump has no root of that name, or more than one.
pub fn dump_subtree(dump: &str, root: &str) -> String {
    let head = format!("scope `{root}` opened at ");
    let mut found = 0;
    let mut lines = Vec::new();
    let mut inside = false;
    for line in dump.lines() {
        if !line.starts_with(' ') {
            inside = line.starts_with(&head);
            found += usize::from(inside);
        }
        if inside {
            lines.push(line);
        }
    }
    assert_eq!(found, 1, "root scope `{root}` in the dump:\n{dump}");
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// `text` with every age (what follows the last ` for ` on a line, as in
/// `running for 12ms`) replaced by `<age>`, so a dump or report can be
/// compared exactly.
pub fn mask_ages(text: &str) -> String {
    let mut masked = String::new();
    for line in text.lines() {
        match line.rfind(", age ") {
            Some(at) => {
                masked.push_str(&line[..at]);
                masked.push_str(", age <age>");
            }
            None => masked.push_str(line),
        }
        masked.push('\n');
    }
    masked
}

/// The current runtime's tasks still alive, called right after a scope
/// returned: every child future has been dropped then (G1), but on a
/// multi-thread runtime the worker that dropped the last one may still be
/// taking its finished task off the runtime's list, in parallel with the
/// scope returning. Tokio wakes a `JoinHandle` before that step too, so
/// even a plain `tokio::spawn` awaited through its handle is counted alive
/// for a moment (about 3% of the time on the development machine). On a
/// multi-thread runtime this waits (up to a second, yielding the thread)
/// for the count to fall to zero by itself; on a current-thread runtime,
/// where that step ran before the scope's task was polled again, it
/// returns the count at once.
pub fn settled_alive_tasks() -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    if metrics.num_workers() > 1 {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while metrics.num_alive_tasks() != 0 && std::time::Instant::now() < give_up {
            std::thread::yield_now();
        }
    }
    metrics.num_alive_tasks()
}
