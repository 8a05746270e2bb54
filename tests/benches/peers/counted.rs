//! Instruction counts: one approach's timed part, under callgrind.
//!
//! ```text
//! NURSERY_BENCH_COUNT='cancel:nursery n.cancel()' NURSERY_BENCH_FLAVOR=current_thread \
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER='valgrind --tool=callgrind --cache-sim=yes
//!     --callgrind-out-file=/tmp/callgrind.%p
//!     --zero-before=*timed_part_starts* --dump-before=*timed_part_ends*' \
//!   cargo bench -p nursery-tests --bench peers
//! grep -h totals: /tmp/callgrind.<pid>.[0-9]*   # <pid> as the run prints it
//! ```
//!
//! Wall-clock ratios on a shared 2-core machine vary by 5-20 % from run
//! to run; callgrind's counts of instructions and simulated cache misses
//! repeat to a few parts in a thousand. `NURSERY_BENCH_COUNT` names a
//! scenario and an approach (`<scenario>:<label>`: any approach of the
//! paired comparisons, e.g. `tiny:nursery spawn`, or any of `cancel`, e.g.
//! `cancel:spawn+Vec abort()`). The approach runs once unmeasured, then
//! `NURSERY_BENCH_COUNT_ROUNDS` times (3 by default), on the flavour
//! `NURSERY_BENCH_FLAVOR` names (the first, if it names several). Prefer
//! `current_thread`: valgrind runs one thread at a time, so on the
//! multi-thread runtime the counts depend on how it interleaved them.
//!
//! Each round calls [`timed_part_starts`] where the benches start their
//! clock and [`timed_part_ends`] where they stop it: in `cancel`, from the
//! cancel call until the last child is dropped; in `tiny` and `cpu_*`, the
//! whole run. With the options above callgrind zeroes its counters at the
//! first and writes them out at the second, so its dumps `.1` to
//! `.<rounds>` hold exactly the timed parts (the last dump, at exit, holds
//! what came after). The `totals:` line's fields are the events in the
//! order of its `events:` line (instructions first); divide them by the
//! children of a round, which the run prints, or read a dump with
//! `callgrind_annotate`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::paired::timed;
use super::{Approach, MANY, Stop, TINY};
use crate::common::{Flavor, cpu_work};

/// Whether the clocks mark their timed parts for callgrind.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// A bench's stopwatch: while counting, its start and stop are marked for
/// callgrind.
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn start() -> Clock {
        if COUNTING.load(Ordering::Relaxed) {
            timed_part_starts();
        }
        Clock(Instant::now())
    }

    pub(crate) fn stop(self) -> Duration {
        let elapsed = self.0.elapsed();
        if COUNTING.load(Ordering::Relaxed) {
            timed_part_ends();
        }
        elapsed
    }
}

/// Where a timed part starts: callgrind's `--zero-before` names it. Never
/// inlined, so that callgrind sees the call; its body differs from
/// [`timed_part_ends`]'s, so that the two are not merged.
#[inline(never)]
fn timed_part_starts() {
    std::hint::black_box(1_u8);
}

/// Where a timed part ends: callgrind's `--dump-before` names it.
#[inline(never)]
fn timed_part_ends() {
    std::hint::black_box(2_u8);
}

/// Runs the counted approach, if asked to; whether it did.
pub(crate) fn run_if_asked() -> bool {
    let Ok(wanted) = std::env::var("NURSERY_BENCH_COUNT") else {
        return false;
    };
    let rounds = match std::env::var("NURSERY_BENCH_COUNT_ROUNDS") {
        Ok(rounds) => rounds
            .parse()
            .ok()
            .filter(|&rounds: &u64| rounds > 0)
            .unwrap_or_else(|| {
                panic!("NURSERY_BENCH_COUNT_ROUNDS={rounds:?}: expected a number of rounds above 0")
            }),
        Err(_) => 3,
    };
    let run = Counted::parse(&wanted);
    let flavor = Flavor::from_env()[0];
    let runs = match run {
        Counted::Tiny(approach) | Counted::Cpu(approach) => approach.runs_on(flavor),
        Counted::Cancel(stop) => stop.runs_on(flavor),
    };
    assert!(
        runs,
        "NURSERY_BENCH_COUNT={wanted:?}: this approach runs on the multi-thread runtime only"
    );
    let runtime = flavor.runtime();
    let once = || match run {
        Counted::Tiny(approach) => {
            timed(&runtime, flavor, approach, TINY, |i| {
                std::future::ready(Ok(std::hint::black_box(i)))
            });
            TINY
        }
        Counted::Cpu(approach) => {
            timed(&runtime, flavor, approach, MANY, |i| async move {
                Ok(cpu_work(i))
            });
            MANY
        }
        Counted::Cancel(stop) => {
            runtime.block_on(flavor.body(stop.run()));
            MANY
        }
    };
    once();
    COUNTING.store(true, Ordering::Relaxed);
    let children: u64 = (0..rounds).map(|_| once()).sum();
    COUNTING.store(false, Ordering::Relaxed);
    let pid = std::process::id();
    println!(
        "counted {wanted:?} on {}: {rounds} rounds of {} children; callgrind's dumps 1 to \
         {rounds} of process {pid} are the timed parts (callgrind.out.{pid}.1 and on, by default)",
        flavor.group("count"),
        children / rounds,
    );
    true
}

/// The approach to count, with its scenario.
#[derive(Clone, Copy)]
enum Counted {
    Tiny(Approach),
    Cpu(Approach),
    Cancel(Stop),
}

impl Counted {
    /// `<scenario>:<label>`, among the paired comparisons' approaches.
    fn parse(wanted: &str) -> Counted {
        let (scenario, label) = wanted.split_once(':').unwrap_or_else(|| {
            panic!("NURSERY_BENCH_COUNT={wanted:?}: expected <scenario>:<approach label>")
        });
        let runs = match scenario {
            "tiny" | "cpu_unbounded" | "cpu_bounded" => {
                let make = match scenario {
                    "tiny" => Counted::Tiny,
                    _ => Counted::Cpu,
                };
                super::paired::approaches(scenario)
                    .into_iter()
                    .map(|approach| (approach.label(), make(approach)))
                    .collect()
            }
            "cancel" => Stop::ALL
                .into_iter()
                .map(|stop| (stop.label().to_owned(), Counted::Cancel(stop)))
                .collect::<Vec<_>>(),
            _ => panic!(
                "NURSERY_BENCH_COUNT={wanted:?}: no scenario {scenario:?}; \
                 expected tiny, cpu_unbounded, cpu_bounded or cancel"
            ),
        };
        match runs.iter().find(|(name, _)| name == label) {
            Some(&(_, run)) => run,
            None => {
                let names: Vec<_> = runs.iter().map(|(name, _)| name.as_str()).collect();
                panic!(
                    "NURSERY_BENCH_COUNT={wanted:?}: no approach {label:?} in {scenario}; \
                     expected one of {names:?}"
                )
            }
        }
    }
}
