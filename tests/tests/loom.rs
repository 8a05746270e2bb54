//! loom models of the scope's shared core: every interleaving of the races
//! the scope relies on, explored with loom's own threads.
//!
//! Run with
//! `RUSTFLAGS="--cfg nursery_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p nursery-tests --release --test loom --target-dir target/loom -- --nocapture`;
//! each model prints how many interleavings loom explored and how long it
//! took ("model X: N iterations in T"). CI runs this bound. A deeper run
//! for humans: `LOOM_MAX_PREEMPTIONS=3`, or no bound at all (see
//! `docs/decisions/0039-ci-runs-the-loom-models-at-preemption-bound-2.md`).
//!
//! What each model checks is in its doc comment ("Invariant: ...").
//!
//! The models drive `nursery::__loom::{Core, Limiter}`, which hold no tokio
//! types; the scope future is modelled by `loom::future::block_on` over the
//! same register / try-close loop the real scope runs. A lost wake-up shows
//! up as a loom deadlock, a double release as a count that never returns
//! to the scope's own unit (also a deadlock).

#![cfg(nursery_loom)]

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use nursery::__loom::{
    Admission, Cancelling, Core, Job, Notes, Reason, Refusal, Shields, Signals, Wakeup,
};

/// Runs `model` under `loom::model`, counting the interleavings loom
/// explores, and prints the count and the time taken. A model that loom
/// explores only once has no race in it: that fails too.
fn explore(name: &str, model: impl Fn() + Sync + Send + 'static) {
    // std's atomics, not loom's: the count is outside the model.
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = iterations.clone();
    let started = Instant::now();
    loom::model(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    let iterations = iterations.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "model {name}: {iterations} iterations in {:.2?}",
        started.elapsed()
    );
    assert!(
        iterations > 1,
        "model {name}: loom explored a single interleaving; the model races nothing"
    );
}

/// The scope waiting for its join, as the scope future does it: register
/// the waker, then try to close.
fn join(core: &Core) {
    loom::future::block_on(poll_fn(|cx| {
        core.register(cx.waker());
        if core.try_close() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

/// Invariant: when the last two children exit while the scope starts
/// waiting, the scope is woken (no lost wake-up), and it observes every
/// child's effects once joined.
#[test]
fn last_child_exit_races_scope_wait() {
    explore("last_child_exit_races_scope_wait", || {
        let core = Arc::new(Core::new(true, None, None));
        let effects = Arc::new(AtomicUsize::new(0));
        core.enter().expect("an open scope admits children");
        core.enter().expect("an open scope admits children");
        let children: Vec<_> = (0..2)
            .map(|_| {
                let core = core.clone();
                let effects = effects.clone();
                thread::spawn(move || {
                    effects.fetch_add(1, Ordering::Relaxed);
                    assert!(!core.exit(), "no parent is held");
                })
            })
            .collect();
        join(&core);
        assert_eq!(
            effects.load(Ordering::Relaxed),
            2,
            "joined before a child ended"
        );
        assert_eq!(core.live(), 0);
        for child in children {
            child.join().unwrap();
        }
    });
}

/// Invariant: two children failing at once under fail-fast: exactly one
/// call cancels the scope, its error is `error`, the other is suppressed,
/// and neither is lost.
#[test]
fn two_failures_one_error_one_suppressed() {
    explore("two_failures_one_error_one_suppressed", || {
        let core = Arc::new(Core::new(true, None, None));
        core.enter().unwrap();
        core.enter().unwrap();
        let children: Vec<_> = (0..2usize)
            .map(|i| {
                let core = core.clone();
                thread::spawn(move || {
                    let cancelling = core.report_error(Box::new(i), false);
                    core.exit();
                    cancelling
                })
            })
            .collect();
        join(&core);
        let results: Vec<_> = children.into_iter().map(|c| c.join().unwrap()).collect();
        let cancellers: Vec<usize> = (0..2).filter(|&i| results[i] == Cancelling::Now).collect();
        assert_eq!(cancellers.len(), 1, "exactly one failure cancels");
        assert!(core.is_cancelled());
        let outcome = core.take_outcome();
        assert_eq!(outcome.cause, Some(Reason::Failed));
        let errors: Vec<usize> = outcome
            .errors
            .into_iter()
            .map(|e| *e.downcast::<usize>().unwrap())
            .collect();
        assert_eq!(errors.len(), 2, "an error was lost");
        assert_eq!(
            errors[0], cancellers[0],
            "the cancelling error is the scope's error"
        );
    });
}

/// Invariant: three children failing at once under `collect_errors` with
/// `max_suppressed(1)`: the outcome keeps two errors (the first and one
/// suppressed) in the order they arrived, counts the third as omitted, and
/// hands it back to be dropped: none is lost, none kept past the cap.
#[test]
fn failures_past_the_cap_are_counted_not_kept() {
    explore("failures_past_the_cap_are_counted_not_kept", || {
        let core = Arc::new(Core::new(false, None, None).cap_suppressed(1));
        let children: Vec<_> = (0..3usize)
            .map(|i| {
                core.enter().unwrap();
                let core = core.clone();
                thread::spawn(move || {
                    let (cancelling, discarded) =
                        core.report_error_with(Box::new(i), false, |_| {});
                    core.exit();
                    assert_eq!(
                        cancelling,
                        Cancelling::No,
                        "collected errors cancel nothing"
                    );
                    discarded.map(|error| *error.downcast::<usize>().unwrap())
                })
            })
            .collect();
        join(&core);
        let discarded: Vec<usize> = children
            .into_iter()
            .filter_map(|child| child.join().unwrap())
            .collect();
        let outcome = core.take_outcome();
        let mut seen: Vec<usize> = outcome
            .errors
            .into_iter()
            .map(|e| *e.downcast::<usize>().unwrap())
            .collect();
        assert_eq!(seen.len(), 2, "the first error and one suppressed are kept");
        assert_eq!(outcome.omitted, 1);
        assert_eq!(
            discarded.len(),
            1,
            "the omitted error comes back to be dropped"
        );
        seen.extend(discarded);
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2], "an error was lost or kept twice");
    });
}

/// Invariant: `Nursery::cancel` racing a child's failure: exactly one of
/// them fixes the outcome; if the cancel won, the child's error is a
/// consequence and is discarded; if the failure won, the cancel is a no-op.
/// Either way the scope is cancelled and joins.
#[test]
fn cancel_races_completion() {
    explore("cancel_races_completion", || {
        let core = Arc::new(Core::new(true, None, None));
        core.enter().unwrap();
        let canceller = {
            let core = core.clone();
            thread::spawn(move || core.cancel(Reason::Requested))
        };
        let child = {
            let core = core.clone();
            thread::spawn(move || {
                let cancelling = core.report_error(Box::new(7u8), false);
                core.exit();
                cancelling
            })
        };
        join(&core);
        let cancel = canceller.join().unwrap();
        let fail = child.join().unwrap();
        assert!(core.is_cancelled());
        let outcome = core.take_outcome();
        match (cancel, fail) {
            (Cancelling::Now, Cancelling::No) => {
                assert_eq!(outcome.cause, Some(Reason::Requested));
                assert!(outcome.errors.is_empty(), "error after the cancel was kept");
            }
            (Cancelling::No, Cancelling::Now) => {
                assert_eq!(outcome.cause, Some(Reason::Failed));
                assert_eq!(outcome.errors.len(), 1);
            }
            other => panic!("exactly one of cancel and failure must win: {other:?}"),
        }
    });
}

/// Invariant: `Nursery::cancel` racing the last child's successful exit
/// while the scope starts waiting: the scope is woken by one or the other
/// (no lost wake-up between the cancel's wake and the exit's), joins only
/// after the child's effects, and returns the body's own result: the
/// cancel fixed the outcome as `Requested` and no error appeared.
#[test]
fn cancel_races_last_child_success() {
    explore("cancel_races_last_child_success", || {
        let core = Arc::new(Core::new(true, None, None));
        let effects = Arc::new(AtomicUsize::new(0));
        core.enter().unwrap();
        let canceller = {
            let core = core.clone();
            thread::spawn(move || core.cancel(Reason::Requested))
        };
        let child = {
            let core = core.clone();
            let effects = effects.clone();
            thread::spawn(move || {
                effects.fetch_add(1, Ordering::Relaxed);
                assert!(!core.exit(), "no parent is held");
            })
        };
        join(&core);
        assert_eq!(
            effects.load(Ordering::Relaxed),
            1,
            "joined before the child ended"
        );
        assert_eq!(
            canceller.join().unwrap(),
            Cancelling::Now,
            "the only cancel"
        );
        child.join().unwrap();
        assert!(core.is_cancelled());
        assert_eq!(core.live(), 0);
        let outcome = core.take_outcome();
        assert_eq!(outcome.cause, Some(Reason::Requested));
        assert!(outcome.errors.is_empty() && outcome.panic.is_none());
    });
}

/// A queued child that records whether it was started or dropped unstarted.
struct Probe {
    started: Arc<AtomicUsize>,
    dropped_unstarted: Arc<AtomicUsize>,
    did_start: bool,
}

impl Job for Probe {
    fn start(mut self: Box<Self>, weight: usize) {
        assert_eq!(weight, 1);
        self.did_start = true;
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    fn poll_job(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.did_start {
            self.dropped_unstarted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Invariant: a queued child handed the slot of a finishing one while the
/// scope is being cancelled is either started (the hand-off came first) or
/// dropped unstarted by the cancel, exactly once; and after the cancel has
/// drained the queue nothing starts.
#[test]
fn queued_child_handoff_races_cancel() {
    explore("queued_child_handoff_races_cancel", || {
        let core = Arc::new(Core::new(true, Some(1), None));
        let limiter = core.limiter().unwrap();
        assert!(limiter.try_acquire(1, 0), "the first child runs");
        let started = Arc::new(AtomicUsize::new(0));
        let dropped_unstarted = Arc::new(AtomicUsize::new(0));
        let probe = Box::new(Probe {
            started: started.clone(),
            dropped_unstarted: dropped_unstarted.clone(),
            did_start: false,
        });
        assert!(matches!(
            limiter.admit_or_queue(1, probe, 0),
            Admission::Queued
        ));

        let finishing = {
            let core = core.clone();
            thread::spawn(move || core.limiter().unwrap().release(1, 0))
        };
        let cancelling = {
            let core = core.clone();
            thread::spawn(move || {
                assert_eq!(core.cancel(Reason::TimedOut), Cancelling::Now);
                drop(core.close_queue());
            })
        };
        finishing.join().unwrap();
        cancelling.join().unwrap();
        let started = started.load(Ordering::Relaxed);
        let dropped = dropped_unstarted.load(Ordering::Relaxed);
        assert_eq!(started + dropped, 1, "started {started}, dropped {dropped}");
        // Closed for good: even with room, nothing is admitted any more.
        assert!(!core.limiter().unwrap().try_acquire(1, 0));
    });
}

/// Invariant: a spawn racing the scope's close either happens before the
/// close (and the scope waits for that child) or sees `Closed` and backs
/// out without touching the parent.
#[test]
fn spawn_races_close() {
    explore("spawn_races_close", || {
        let core = Arc::new(Core::new(true, None, None));
        let child_ran = Arc::new(AtomicBool::new(false));
        let spawner = {
            let core = core.clone();
            let child_ran = child_ran.clone();
            thread::spawn(move || match core.enter() {
                Ok(()) => {
                    child_ran.store(true, Ordering::Relaxed);
                    core.exit();
                    true
                }
                Err((refusal, release_parent)) => {
                    assert_eq!(refusal, Refusal::Closed);
                    assert!(!release_parent, "no parent is held");
                    false
                }
            })
        };
        join(&core);
        let seen_at_join = child_ran.load(Ordering::Relaxed);
        let entered = spawner.join().unwrap();
        assert_eq!(
            entered, seen_at_join,
            "a child entered but the scope did not wait for it"
        );
    });
}

/// Invariant: an inner scope dropped while its last child ends holds its
/// parent exactly once and releases it exactly once, so the parent's join
/// completes (a missed release or a double release would leave the
/// parent's count off its own unit forever: a deadlock).
#[test]
fn dropped_inner_scope_releases_parent_once() {
    explore("dropped_inner_scope_releases_parent_once", || {
        let parent = Arc::new(Core::new(true, None, None));
        let inner = Arc::new(Core::new(true, None, None));
        inner.enter().unwrap();
        let child = {
            let parent = parent.clone();
            let inner = inner.clone();
            thread::spawn(move || {
                if inner.exit() {
                    assert!(!parent.exit());
                }
            })
        };
        // The inner scope's future is dropped: hold the parent, let go.
        parent.enter_hold().expect("the parent is open");
        if inner.abandon() {
            assert!(!parent.exit());
        }
        join(&parent);
        child.join().unwrap();
        assert_eq!(inner.live(), 0);
    });
}

/// Invariant: a runner whose child ended takes the next queued child to
/// run in place while the scope is being cancelled: the child is either
/// taken (the hand-off came first, and runs) or dropped unstarted by the
/// cancel, exactly once; the weight taken for it is the budget's.
#[test]
fn runner_takes_the_next_child_while_cancel_races() {
    explore("runner_takes_the_next_child_while_cancel_races", || {
        let core = Arc::new(Core::new(true, Some(1), None));
        let limiter = core.limiter().unwrap();
        assert!(limiter.try_acquire(1, 0), "the first child runs");
        let started = Arc::new(AtomicUsize::new(0));
        let dropped_unstarted = Arc::new(AtomicUsize::new(0));
        let probe = Box::new(Probe {
            started: started.clone(),
            dropped_unstarted: dropped_unstarted.clone(),
            did_start: false,
        });
        assert!(matches!(
            limiter.admit_or_queue(1, probe, 0),
            Admission::Queued
        ));

        let runner = {
            let core = core.clone();
            thread::spawn(
                move || match core.limiter().unwrap().release_and_take(1, 0) {
                    Some((weight, job)) => {
                        assert_eq!(weight, 1);
                        // Run in place: stands for polling it to completion.
                        job.start(weight);
                        true
                    }
                    None => false,
                },
            )
        };
        let cancelling = {
            let core = core.clone();
            thread::spawn(move || {
                assert_eq!(core.cancel(Reason::Cancelled), Cancelling::Now);
                drop(core.close_queue());
            })
        };
        let took = runner.join().unwrap();
        cancelling.join().unwrap();
        let started = started.load(Ordering::Relaxed);
        let dropped = dropped_unstarted.load(Ordering::Relaxed);
        assert_eq!(started + dropped, 1, "started {started}, dropped {dropped}");
        assert_eq!(took, started == 1);
    });
}

// ===== local children =====

/// Invariant: a local child woken on another thread while the scope future
/// polls it is polled again: the wake either happens before the scope
/// future clears the child's flag (and the poll after the clear sees the
/// child's progress), or after it (and notes the slot, waking the scope
/// future). A lost wake shows as a deadlock.
#[test]
fn a_local_childs_wake_during_its_poll_is_not_lost() {
    explore("a_local_childs_wake_during_its_poll_is_not_lost", || {
        let signals = Arc::new(Signals::new());
        let wakeup = Arc::new(Wakeup::new());
        // Woken once already: the scope future reads that note first, so
        // the flag is set when the race starts.
        wakeup.wake(0, &signals);
        // The child's progress: what its poll reads.
        let ready = Arc::new(AtomicBool::new(false));
        let waker_thread = {
            let (signals, wakeup, ready) = (signals.clone(), wakeup.clone(), ready.clone());
            thread::spawn(move || {
                ready.store(true, Ordering::Release);
                wakeup.wake(0, &signals);
            })
        };
        let mut notes = Notes::default();
        let mut due = false;
        loom::future::block_on(poll_fn(|cx| {
            signals.register(cx.waker());
            signals.take(&mut notes);
            due |= notes.woken.contains(&0);
            if due {
                due = false;
                wakeup.clear();
                if ready.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        }));
        waker_thread.join().unwrap();
    });
}

/// Invariant: a queued local child admitted on another thread (a parallel
/// child ended and handed its weight on) reaches the scope future exactly
/// once, with its weight, while the scope future keeps polling; and a
/// refusal (the queue closed) likewise.
#[test]
fn a_local_tickets_admission_and_refusal_reach_the_scope_future_once() {
    explore(
        "a_local_tickets_admission_and_refusal_reach_the_scope_future_once",
        || {
            let signals = Arc::new(Signals::new());
            let admitting = {
                let signals = signals.clone();
                thread::spawn(move || signals.admitted(1, 3))
            };
            let refusing = {
                let signals = signals.clone();
                thread::spawn(move || signals.refused(2))
            };
            let mut notes = Notes::default();
            let (mut admitted, mut refused) = (Vec::new(), Vec::new());
            loom::future::block_on(poll_fn(|cx| {
                signals.register(cx.waker());
                signals.take(&mut notes);
                admitted.extend_from_slice(&notes.admitted);
                refused.extend_from_slice(&notes.refused);
                if admitted.is_empty() || refused.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            }));
            admitting.join().unwrap();
            refusing.join().unwrap();
            signals.take(&mut notes);
            assert!(notes.is_empty(), "a note was read twice");
            assert_eq!((admitted, refused), (vec![(1, 3)], vec![2]));
        },
    );
}

// ===== shields =====

/// Invariant: a child entering and leaving a shield on one thread while
/// the scope decides its abort on another is aborted exactly once: by the
/// decision (if it was not inside a shield then), or as it leaves its
/// shield (if the decision spared it); and a shield entered after the
/// decision says it protects nothing.
#[test]
fn a_shield_races_the_abort_decision() {
    explore("a_shield_races_the_abort_decision", || {
        let shields = Arc::new(Shields::<u8>::new());
        // Set between the child's `enter` and its `leave`: the code inside.
        let inside = Arc::new(AtomicBool::new(false));
        let child = {
            let (shields, inside) = (shields.clone(), inside.clone());
            thread::spawn(move || {
                let protected = shields.enter(7);
                inside.store(true, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                let aborted_on_leaving = shields.leave(7);
                (protected, aborted_on_leaving)
            })
        };
        let spared = shields.abort();
        let aborted_by_decision = !spared.contains(&7);
        // Inside its shield after the decision: it entered before the
        // decision (which must then spare it) or after (and its shield
        // must say it protects nothing).
        let inside_after_decision = inside.load(Ordering::SeqCst);
        let (protected, aborted_on_leaving) = child.join().unwrap();
        if inside_after_decision {
            assert!(
                !(protected && aborted_by_decision),
                "a protected child was aborted by the decision while inside its shield"
            );
        }
        assert_eq!(
            usize::from(aborted_by_decision) + usize::from(aborted_on_leaving),
            1,
            "aborted by the decision: {aborted_by_decision}, on leaving: {aborted_on_leaving}"
        );
        if !protected {
            assert!(
                aborted_by_decision,
                "an unprotected child is the decision's to abort"
            );
        }
        if aborted_on_leaving {
            assert!(protected, "only a protected child is aborted on leaving");
        }
        assert_eq!(shields.count(), 0);
    });
}
