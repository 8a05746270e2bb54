//! Paired rounds: the targets' comparisons, measured side by side.
//!
//! ```text
//! NURSERY_BENCH_PAIRED=60 cargo bench -p nursery-tests --bench peers
//! ```
//!
//! Criterion measures one approach for seconds, then the next. On a shared
//! machine whose speed drifts by 10-50 % from one minute to the next, the
//! ratio of two such medians carries that drift. Here each comparison runs
//! its two approaches alternately, one iteration each a round (which goes
//! first alternates too), and the figure is the ratio *within* each round:
//! the median of those ratios over all rounds, with the middle half of
//! them as its spread. Drift slower than a round (tens to hundreds of
//! milliseconds) cancels out.
//!
//! Only the two approaches of a comparison alternate: an approach's time
//! depends on what ran just before it (what the allocator kept, how far
//! tokio's queues and lists had grown), so rotating through a whole
//! scenario's approaches would measure each one after a mix of others.
//! Alternating two, each runs after the other as often as after itself.
//!
//! Runs instead of the criterion groups when `NURSERY_BENCH_PAIRED` is set
//! (to the number of rounds; 3 more are run first and thrown away), on the
//! flavours `NURSERY_BENCH_FLAVOR` names, for the scenarios
//! `NURSERY_BENCH_SCENARIOS` lists (comma-separated; all by default:
//! `tiny,cpu_unbounded,cpu_bounded,cancel`). Prints Markdown.

use std::hint::black_box;
use std::time::Duration;

use super::{Approach, MANY, Stop, TINY, WORKERS};
use crate::common::{Flavor, Out, cpu_work};
use crate::counted::Clock;

/// Rounds thrown away before the measured ones (allocator and runtime
/// warm-up).
const WARM_UP: usize = 3;

/// One comparison: `subject`'s time over `reference`'s, round by round.
struct Pair {
    scenario: &'static str,
    subject: String,
    reference: String,
    /// What the target asks of the ratio.
    target: &'static str,
}

/// Runs the paired rounds and prints the tables, if asked to; whether it
/// did.
pub(crate) fn run_if_asked() -> bool {
    let Ok(rounds) = std::env::var("NURSERY_BENCH_PAIRED") else {
        return false;
    };
    let rounds: usize = rounds
        .parse()
        .ok()
        .filter(|&rounds| rounds > 0)
        .unwrap_or_else(|| {
            panic!("NURSERY_BENCH_PAIRED={rounds:?}: expected a number of rounds above 0")
        });
    let scenarios = std::env::var("NURSERY_BENCH_SCENARIOS").unwrap_or_default();
    const KNOWN: [&str; 4] = ["tiny", "cpu_unbounded", "cpu_bounded", "cancel"];
    if let Some(unknown) = scenarios
        .split(',')
        .map(str::trim)
        .find(|name| !name.is_empty() && !KNOWN.contains(name))
    {
        panic!(
            "NURSERY_BENCH_SCENARIOS: no paired scenario {unknown:?}; expected some of {KNOWN:?}"
        );
    }
    let wanted = |scenario: &str| {
        scenarios.is_empty() || scenarios.split(',').any(|wanted| wanted.trim() == scenario)
    };
    for flavor in Flavor::from_env() {
        println!("\n### {} ({rounds} rounds)\n", flavor.group("paired"));
        println!(
            "| scenario | nursery | against | median ratio | middle half of the rounds | target |"
        );
        println!("|---|---|---|---:|---:|---|");
        let runtime = flavor.runtime();
        let tiny = |approach: Approach| {
            timed(&runtime, flavor, approach, TINY, |i| {
                std::future::ready(Ok(black_box(i)))
            })
        };
        let runtime_pairs = |scenario| match wanted(scenario) {
            true => runtime_pairs(scenario),
            false => Vec::new(),
        };
        for (pair, approaches) in runtime_pairs("tiny") {
            compare(&pair, rounds, |index| tiny(approaches[index]));
        }
        let cpu = |approach: Approach| {
            timed(&runtime, flavor, approach, MANY, |i| async move {
                Ok(cpu_work(i))
            })
        };
        for (pair, approaches) in runtime_pairs("cpu_unbounded").into_iter().chain(
            bounded_pairs()
                .into_iter()
                .filter(|_| wanted("cpu_bounded")),
        ) {
            compare(&pair, rounds, |index| cpu(approaches[index]));
        }
        for (pair, stops) in cancel_pairs().into_iter().filter(|_| wanted("cancel")) {
            compare(&pair, rounds, |index| {
                runtime.block_on(flavor.body(stops[index].run()))
            });
        }
    }
    true
}

/// Every approach of `scenario`'s comparisons (`tiny`, `cpu_unbounded`,
/// `cpu_bounded`; none for any other), each once.
pub(crate) fn approaches(scenario: &str) -> Vec<Approach> {
    let pairs = match scenario {
        "tiny" => runtime_pairs("tiny"),
        "cpu_unbounded" => runtime_pairs("cpu_unbounded"),
        "cpu_bounded" => bounded_pairs(),
        _ => Vec::new(),
    };
    let mut approaches: Vec<Approach> = Vec::new();
    for approach in pairs.into_iter().flat_map(|(_, approaches)| approaches) {
        if !approaches
            .iter()
            .any(|known| known.label() == approach.label())
        {
            approaches.push(approach);
        }
    }
    approaches
}

fn runtime_pairs(scenario: &'static str) -> Vec<(Pair, [Approach; 2])> {
    let mut pairs = Vec::new();
    for subject in [Approach::NurserySpawn, Approach::NurserySpawnVec] {
        for (reference, target) in [
            (Approach::SpawnVec, "≤ 1.10"),
            (Approach::JoinSet, "< 1.00"),
        ] {
            pairs.push(Pair::of(scenario, subject, reference, target));
        }
    }
    // Local children against the in-place peers: one thread does the work.
    for subject in [Approach::NurseryLocal, Approach::NurseryLocalVec] {
        for (reference, target) in [
            (Approach::FuturesUnordered, "≤ 1.20"),
            (Approach::Moro, "none (a peer that borrows)"),
        ] {
            pairs.push(Pair::of(scenario, subject, reference, target));
        }
    }
    pairs
}

fn bounded_pairs() -> Vec<(Pair, [Approach; 2])> {
    let pool = Approach::WorkerPool(WORKERS);
    vec![
        Pair::of("cpu_bounded", Approach::NurseryMap(WORKERS), pool, "≤ 1.05"),
        Pair::of(
            "cpu_bounded",
            Approach::NurseryForEach(WORKERS),
            pool,
            "≤ 1.05",
        ),
        Pair::of(
            "cpu_bounded",
            Approach::NurseryLimit(WORKERS),
            Approach::NurserySpawn,
            "≤ 1.10 (against its own unbounded figure)",
        ),
        Pair::of(
            "cpu_bounded",
            Approach::NurseryLocalLimit(WORKERS),
            Approach::FuturesUnorderedBounded(WORKERS),
            "≤ 1.20",
        ),
        Pair::of(
            "cpu_bounded",
            Approach::NurseryLocalLimit(WORKERS),
            Approach::BufferUnordered(WORKERS),
            "≤ 1.20",
        ),
    ]
}

fn cancel_pairs() -> Vec<(Pair, [Stop; 2])> {
    let mut pairs = Vec::new();
    for subject in [Stop::NurseryCancel, Stop::NurseryDrop] {
        for (reference, target) in [
            (Stop::SpawnVecAbort, "≤ 1.00"),
            (Stop::SpawnAbortHandles, "none (tokio's detached tasks)"),
            (Stop::JoinSetAbortAll, "< 1.00"),
        ] {
            let pair = Pair {
                scenario: "cancel",
                subject: subject.label().to_owned(),
                reference: reference.label().to_owned(),
                target,
            };
            pairs.push((pair, [subject, reference]));
        }
    }
    for subject in [Stop::NurseryLocalCancel, Stop::NurseryLocalDrop] {
        let reference = Stop::FuturesUnorderedDrop;
        let pair = Pair {
            scenario: "cancel",
            subject: subject.label().to_owned(),
            reference: reference.label().to_owned(),
            target: "≤ 1.20",
        };
        pairs.push((pair, [subject, reference]));
    }
    pairs
}

impl Pair {
    /// `subject` against `reference`, and the two to run.
    fn of(
        scenario: &'static str,
        subject: Approach,
        reference: Approach,
        target: &'static str,
    ) -> (Pair, [Approach; 2]) {
        let pair = Pair {
            scenario,
            subject: subject.label(),
            reference: reference.label(),
            target,
        };
        (pair, [subject, reference])
    }
}

/// One iteration of `approach` with `count` children of `job`, timed (and
/// marked for callgrind while counting: see `counted.rs`).
pub(crate) fn timed<J, Fut>(
    runtime: &tokio::runtime::Runtime,
    flavor: Flavor,
    approach: Approach,
    count: u64,
    job: J,
) -> Duration
where
    J: Fn(u64) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let clock = Clock::start();
    runtime.block_on(flavor.body(approach.run(count, job)));
    clock.stop()
}

/// Runs `pair`'s subject (`measure(0)`) and reference (`measure(1)`)
/// alternately for `rounds` rounds after the warm-up, the first of each
/// round alternating, and prints the median and quartiles of the rounds'
/// ratios.
fn compare(pair: &Pair, rounds: usize, mut measure: impl FnMut(usize) -> Duration) {
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..WARM_UP + rounds {
        let mut times = [Duration::ZERO; 2];
        for step in 0..2 {
            let index = (round + step) % 2;
            times[index] = measure(index);
        }
        if round >= WARM_UP {
            ratios.push(times[0].as_secs_f64() / times[1].as_secs_f64());
        }
    }
    ratios.sort_by(f64::total_cmp);
    let quantile = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {} | {} | {} | {:.3}x | {:.3}–{:.3} | {} |",
        pair.scenario,
        pair.subject,
        pair.reference,
        quantile(0.5),
        quantile(0.25),
        quantile(0.75),
        pair.target,
    );
}
