//! nursery side by side with the peers it replaces, in one run.
//!
//! ```text
//! cargo bench -p nursery-tests --bench peers                  # multi-thread runtime, 2 workers
//! NURSERY_BENCH_FLAVOR=current_thread cargo bench -p nursery-tests --bench peers
//! NURSERY_BENCH_FLAVOR=both cargo bench -p nursery-tests --bench peers   # the two above
//! NURSERY_BENCH_FLAVOR=worker cargo bench -p nursery-tests --bench peers # bodies on a worker
//! python3 tests/benches/summary.py                            # medians and ratios
//! NURSERY_BENCH_PAIRED=60 cargo bench -p nursery-tests --bench peers    # the targets' ratios, round by round
//! NURSERY_BENCH_COUNT='tiny:nursery spawn' ...                          # instruction counts under callgrind
//! ```
//!
//! The last needs valgrind as cargo's runner; `peers/counted.rs` gives
//! the whole command.
//!
//! Groups (each approach a `BenchmarkId`, its parameter the number of
//! children): `tiny`, `cpu_unbounded`, `cpu_bounded`, `sleep`, `cancel`,
//! `map`, `pipeline`. The same groups run under `current_thread/` on the
//! current-thread runtime, and under `worker/` with each bench body spawned
//! onto a worker of the multi-thread runtime. Peak memory per pending
//! child is `benches/memory.rs`. What the numbers mean is in
//! `docs/performance.md`.
//!
//! By default the bench bodies run in `Runtime::block_on`, as under
//! `#[tokio::main]`: with the multi-thread runtime the spawning code is on
//! the main thread and the children on the 2 workers.

mod common;
#[path = "peers/counted.rs"]
mod counted;
#[path = "peers/paired.rs"]
mod paired;

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
};
use futures::stream::{self, FuturesUnordered, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use common::{Countdown, Flavor, Out, SLEEP, WORKERS, cpu_work, pending_child};
use counted::Clock;

/// Children in `tiny` (and pending children in `memory`).
const TINY: u64 = 100_000;
/// Children in `cpu`, `sleep` and `cancel`; items in `map` and `pipeline`.
const MANY: u64 = 10_000;
/// async-scoped's join is quadratic in the number of children: per child
/// 2.3 µs at 10,000, 8.5 µs at 40,000 (and about 40 µs at 100,000) on the
/// 2-core development machine. Its `tiny` case runs with this many, so the
/// whole suite stays short; its per-child figure is therefore flattered.
const ASYNC_SCOPED_TINY: u64 = 10_000;
/// The bound of the `sleep` scenario, for every approach.
const SLEEP_LIMIT: usize = 100;
/// Workers of each `pipeline` stage.
const STAGE_WORKERS: usize = WORKERS;

// ===== the approaches =====

/// One way of running `count` children, child `i` being the future `job(i)`.
#[derive(Clone, Copy, Debug)]
enum Approach {
    /// `tokio::spawn` each, keep the `JoinHandle`s in a `Vec`, await them in order.
    SpawnVec,
    /// `JoinSet::spawn` each, then `join_next` until empty.
    JoinSet,
    /// `JoinSet`, joining one before spawning when `len() == limit`.
    JoinSetBounded(usize),
    /// `TaskTracker::spawn` each (handles dropped), `close`, `wait`.
    TaskTracker,
    /// `TaskTracker`, each spawn behind an owned `Semaphore` permit.
    TaskTrackerSemaphore(usize),
    /// All children as futures in one `FuturesUnordered`, polled in place
    /// (no tokio tasks: one thread does all the work).
    FuturesUnordered,
    /// `FuturesUnordered` in place, pushing one when `len() < limit`.
    FuturesUnorderedBounded(usize),
    /// `stream::iter(..).map(job).buffer_unordered(limit)`, in place.
    BufferUnordered(usize),
    /// `async_scoped::TokioScope::scope_and_block`, `spawn` each (tokio
    /// tasks; the join blocks the thread). Multi-thread runtime only.
    AsyncScoped,
    /// async-scoped, every child spawned, each awaiting a permit of a
    /// `Semaphore` borrowed from the caller's stack.
    AsyncScopedSemaphore(usize),
    /// `moro::async_scope!`, `spawn` each and await the handles (the
    /// children run inside the scope future, on one thread).
    Moro,
    /// moro, every child spawned, each awaiting a borrowed `Semaphore`.
    MoroSemaphore(usize),
    /// Go-style: `workers` tasks pull job numbers from one async-channel
    /// (MPMC) until it is closed; each returns its sum.
    WorkerPool(usize),
    /// `tokio::spawn` + `Vec<JoinHandle>`, each spawn behind an owned
    /// `Semaphore` permit acquired by the spawning loop.
    Semaphore(usize),
    /// `nursery::scope`, `n.spawn` each, handles dropped.
    NurserySpawn,
    /// `nursery::scope`, `n.spawn` each, handles kept in a `Vec` and awaited.
    NurserySpawnVec,
    /// `Nursery::builder().limit(limit).scope(..)`, `n.spawn` each, handles dropped.
    NurseryLimit(usize),
    /// `nursery::for_each(0..count, limit, job)`.
    NurseryForEach(usize),
    /// `nursery::map(0..count, limit, job)`.
    NurseryMap(usize),
    /// `nursery::scope_local`, `local.spawn` each, handles dropped (the
    /// children run inside the scope future, on one thread).
    NurseryLocal,
    /// `nursery::scope_local`, `local.spawn` each, handles kept in a `Vec`
    /// and awaited.
    NurseryLocalVec,
    /// `Nursery::builder().limit(limit).scope_local(..)`, `local.spawn`
    /// each, handles dropped.
    NurseryLocalLimit(usize),
}

impl Approach {
    /// The `BenchmarkId` function name.
    fn label(self) -> String {
        match self {
            Approach::SpawnVec => "spawn+Vec".into(),
            Approach::JoinSet => "JoinSet".into(),
            Approach::JoinSetBounded(limit) => format!("JoinSet({limit})"),
            Approach::TaskTracker => "TaskTracker".into(),
            Approach::TaskTrackerSemaphore(limit) => format!("TaskTracker+Semaphore({limit})"),
            Approach::FuturesUnordered => "FuturesUnordered".into(),
            Approach::FuturesUnorderedBounded(limit) => format!("FuturesUnordered({limit})"),
            Approach::BufferUnordered(limit) => format!("buffer_unordered({limit})"),
            Approach::AsyncScoped => "async-scoped".into(),
            Approach::AsyncScopedSemaphore(limit) => format!("async-scoped+Semaphore({limit})"),
            Approach::Moro => "moro".into(),
            Approach::MoroSemaphore(limit) => format!("moro+Semaphore({limit})"),
            Approach::WorkerPool(workers) => format!("worker pool({workers})"),
            Approach::Semaphore(limit) => format!("Semaphore({limit})"),
            Approach::NurserySpawn => "nursery spawn".into(),
            Approach::NurserySpawnVec => "nursery spawn+Vec".into(),
            Approach::NurseryLimit(limit) => format!("nursery limit({limit}) spawn"),
            Approach::NurseryForEach(limit) => format!("nursery for_each({limit})"),
            Approach::NurseryMap(limit) => format!("nursery map({limit})"),
            Approach::NurseryLocal => "nursery local".into(),
            Approach::NurseryLocalVec => "nursery local+Vec".into(),
            Approach::NurseryLocalLimit(limit) => format!("nursery local limit({limit})"),
        }
    }

    /// Whether the approach can run on `flavor`: async-scoped blocks in
    /// place, which tokio forbids on the current-thread runtime.
    fn runs_on(self, flavor: Flavor) -> bool {
        let blocks = matches!(
            self,
            Approach::AsyncScoped | Approach::AsyncScopedSemaphore(_)
        );
        !blocks || flavor.is_multi_thread()
    }

    /// Runs `count` children, child `i` being `job(i)`, until all have
    /// finished.
    async fn run<J, Fut>(self, count: u64, job: J)
    where
        J: Fn(u64) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        match self {
            Approach::SpawnVec => {
                let handles: Vec<_> = (0..count).map(|i| tokio::spawn(job(i))).collect();
                for handle in handles {
                    black_box(handle.await.unwrap().unwrap());
                }
            }
            Approach::JoinSet => {
                let mut set = JoinSet::new();
                for i in 0..count {
                    set.spawn(job(i));
                }
                while let Some(value) = set.join_next().await {
                    black_box(value.unwrap().unwrap());
                }
            }
            Approach::JoinSetBounded(limit) => {
                let mut set: JoinSet<Out> = JoinSet::new();
                for i in 0..count {
                    if set.len() >= limit {
                        black_box(set.join_next().await.unwrap().unwrap().unwrap());
                    }
                    set.spawn(job(i));
                }
                while let Some(value) = set.join_next().await {
                    black_box(value.unwrap().unwrap());
                }
            }
            Approach::TaskTracker => {
                let tracker = TaskTracker::new();
                for i in 0..count {
                    tracker.spawn(job(i));
                }
                tracker.close();
                tracker.wait().await;
            }
            Approach::TaskTrackerSemaphore(limit) => {
                let tracker = TaskTracker::new();
                let permits = Arc::new(Semaphore::new(limit));
                for i in 0..count {
                    let permit = permits.clone().acquire_owned().await.unwrap();
                    tracker.spawn(async move {
                        black_box(job(i).await.unwrap());
                        drop(permit);
                    });
                }
                tracker.close();
                tracker.wait().await;
            }
            Approach::FuturesUnordered => {
                let mut children: FuturesUnordered<_> = (0..count).map(job).collect();
                while let Some(value) = children.next().await {
                    black_box(value.unwrap());
                }
            }
            Approach::FuturesUnorderedBounded(limit) => {
                let mut children = FuturesUnordered::new();
                for i in 0..count {
                    if children.len() >= limit {
                        black_box(children.next().await);
                    }
                    children.push(job(i));
                }
                while let Some(value) = children.next().await {
                    black_box(value.unwrap());
                }
            }
            Approach::BufferUnordered(limit) => {
                stream::iter(0..count)
                    .map(job)
                    .buffer_unordered(limit)
                    .for_each(|value| {
                        black_box(value.unwrap());
                        std::future::ready(())
                    })
                    .await;
            }
            Approach::AsyncScoped => {
                let ((), values) = async_scoped::TokioScope::scope_and_block(|scope| {
                    for i in 0..count {
                        scope.spawn(job(i));
                    }
                });
                for value in values {
                    black_box(value.unwrap().unwrap());
                }
            }
            Approach::AsyncScopedSemaphore(limit) => {
                let permits = Semaphore::new(limit);
                let permits = &permits;
                let ((), values) = async_scoped::TokioScope::scope_and_block(|scope| {
                    for i in 0..count {
                        scope.spawn(async move {
                            let _permit = permits.acquire().await.unwrap();
                            job(i).await
                        });
                    }
                });
                for value in values {
                    black_box(value.unwrap().unwrap());
                }
            }
            Approach::Moro => {
                moro::async_scope!(|scope| {
                    let handles: Vec<_> = (0..count).map(|i| scope.spawn(job(i))).collect();
                    for handle in handles {
                        black_box(handle.await.unwrap());
                    }
                })
                .await;
            }
            Approach::MoroSemaphore(limit) => {
                let permits = Semaphore::new(limit);
                let permits = &permits;
                moro::async_scope!(|scope| {
                    let handles: Vec<_> = (0..count)
                        .map(|i| {
                            scope.spawn(async move {
                                let _permit = permits.acquire().await.unwrap();
                                job(i).await
                            })
                        })
                        .collect();
                    for handle in handles {
                        black_box(handle.await.unwrap());
                    }
                })
                .await;
            }
            Approach::WorkerPool(workers) => {
                let (jobs_tx, jobs) = async_channel::unbounded::<u64>();
                let pool: Vec<_> = (0..workers)
                    .map(|_| {
                        let jobs = jobs.clone();
                        tokio::spawn(async move {
                            let mut sum = 0u64;
                            while let Ok(i) = jobs.recv().await {
                                sum = sum.wrapping_add(job(i).await.unwrap());
                            }
                            sum
                        })
                    })
                    .collect();
                drop(jobs);
                for i in 0..count {
                    jobs_tx.send(i).await.unwrap();
                }
                drop(jobs_tx);
                for worker in pool {
                    black_box(worker.await.unwrap());
                }
            }
            Approach::Semaphore(limit) => {
                let permits = Arc::new(Semaphore::new(limit));
                let mut handles = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let permit = permits.clone().acquire_owned().await.unwrap();
                    handles.push(tokio::spawn(async move {
                        let value = job(i).await;
                        drop(permit);
                        value
                    }));
                }
                for handle in handles {
                    black_box(handle.await.unwrap().unwrap());
                }
            }
            Approach::NurserySpawn => {
                nursery::scope(|n| async move {
                    for i in 0..count {
                        n.spawn(job(i));
                    }
                    Ok(())
                })
                .await
                .unwrap();
            }
            Approach::NurserySpawnVec => {
                nursery::scope(|n| async move {
                    let handles: Vec<_> = (0..count).map(|i| n.spawn(job(i))).collect();
                    for handle in handles {
                        black_box(handle.await.unwrap());
                    }
                    Ok(())
                })
                .await
                .unwrap();
            }
            Approach::NurseryLimit(limit) => {
                nursery::Nursery::builder()
                    .limit(limit)
                    .scope(|n| async move {
                        for i in 0..count {
                            n.spawn(job(i));
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            Approach::NurseryForEach(limit) => {
                nursery::for_each(0..count, limit, move |i| async move {
                    black_box(job(i).await?);
                    Ok::<_, ()>(())
                })
                .await
                .unwrap();
            }
            Approach::NurseryMap(limit) => {
                let values = nursery::map(0..count, limit, job).await.unwrap();
                black_box(values);
            }
            Approach::NurseryLocal => {
                nursery::scope_local(|_n, local| async move {
                    for i in 0..count {
                        local.spawn(job(i));
                    }
                    Ok(())
                })
                .await
                .unwrap();
            }
            Approach::NurseryLocalVec => {
                nursery::scope_local(|_n, local| async move {
                    let handles: Vec<_> = (0..count).map(|i| local.spawn(job(i))).collect();
                    for handle in handles {
                        black_box(handle.await.unwrap());
                    }
                    Ok(())
                })
                .await
                .unwrap();
            }
            Approach::NurseryLocalLimit(limit) => {
                nursery::Nursery::builder()
                    .limit(limit)
                    .scope_local(|_n, local| async move {
                        for i in 0..count {
                            local.spawn(job(i));
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        }
    }
}

/// Benches every approach of `approaches` that runs on `flavor`, each with
/// `count` children (`count_of` may change it per approach).
fn bench_approaches<J, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    flavor: Flavor,
    approaches: &[Approach],
    count_of: impl Fn(Approach) -> u64,
    job: J,
) where
    J: Fn(u64) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    for &approach in approaches {
        if !approach.runs_on(flavor) {
            continue;
        }
        let count = count_of(approach);
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new(approach.label(), count), |b| {
            b.to_async(runtime)
                .iter(|| flavor.body(approach.run(count, job)))
        });
    }
}

// ===== tiny, cpu, sleep =====

fn tiny(c: &mut Criterion) {
    let approaches = [
        Approach::SpawnVec,
        Approach::JoinSet,
        Approach::TaskTracker,
        Approach::FuturesUnordered,
        Approach::BufferUnordered(WORKERS),
        Approach::AsyncScoped,
        Approach::Moro,
        Approach::WorkerPool(WORKERS),
        Approach::Semaphore(WORKERS),
        Approach::NurserySpawn,
        Approach::NurserySpawnVec,
        Approach::NurseryLimit(WORKERS),
        Approach::NurseryForEach(WORKERS),
        Approach::NurseryMap(WORKERS),
        Approach::NurseryLocal,
        Approach::NurseryLocalVec,
    ];
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        let mut group = c.benchmark_group(flavor.group("tiny"));
        // 5-150 ms an iteration: flat sampling, 10 samples.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        let count_of = |approach| match approach {
            Approach::AsyncScoped => ASYNC_SCOPED_TINY,
            _ => TINY,
        };
        bench_approaches(&mut group, &runtime, flavor, &approaches, count_of, |i| {
            std::future::ready(Ok(black_box(i)))
        });
        group.finish();
    }
}

fn cpu(c: &mut Criterion) {
    let unbounded = [
        Approach::SpawnVec,
        Approach::JoinSet,
        Approach::TaskTracker,
        Approach::FuturesUnordered,
        Approach::AsyncScoped,
        Approach::Moro,
        Approach::NurserySpawn,
        Approach::NurserySpawnVec,
        Approach::NurseryLocal,
        Approach::NurseryLocalVec,
    ];
    let bounded = [
        Approach::JoinSetBounded(WORKERS),
        Approach::TaskTrackerSemaphore(WORKERS),
        Approach::FuturesUnorderedBounded(WORKERS),
        Approach::BufferUnordered(WORKERS),
        Approach::AsyncScopedSemaphore(WORKERS),
        Approach::MoroSemaphore(WORKERS),
        Approach::WorkerPool(WORKERS),
        Approach::Semaphore(WORKERS),
        Approach::NurseryLimit(WORKERS),
        Approach::NurseryForEach(WORKERS),
        Approach::NurseryMap(WORKERS),
        Approach::NurseryLocalLimit(WORKERS),
    ];
    let job = |i: u64| async move { Ok(cpu_work(i)) };
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        for (scenario, approaches) in [
            ("cpu_unbounded", &unbounded[..]),
            ("cpu_bounded", &bounded[..]),
        ] {
            let mut group = c.benchmark_group(flavor.group(scenario));
            // 3-30 ms an iteration.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(20);
            group.warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(2));
            bench_approaches(&mut group, &runtime, flavor, approaches, |_| MANY, job);
            group.finish();
        }
    }
}

fn sleep(c: &mut Criterion) {
    let approaches = [
        Approach::JoinSetBounded(SLEEP_LIMIT),
        Approach::TaskTrackerSemaphore(SLEEP_LIMIT),
        Approach::FuturesUnorderedBounded(SLEEP_LIMIT),
        Approach::BufferUnordered(SLEEP_LIMIT),
        Approach::AsyncScopedSemaphore(SLEEP_LIMIT),
        Approach::MoroSemaphore(SLEEP_LIMIT),
        Approach::WorkerPool(SLEEP_LIMIT),
        Approach::Semaphore(SLEEP_LIMIT),
        Approach::NurseryLimit(SLEEP_LIMIT),
        Approach::NurseryForEach(SLEEP_LIMIT),
        Approach::NurseryMap(SLEEP_LIMIT),
    ];
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        let mut group = c.benchmark_group(flavor.group("sleep"));
        // About 220 ms an iteration (100 rounds of a 1 ms timer).
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        bench_approaches(
            &mut group,
            &runtime,
            flavor,
            &approaches,
            |_| MANY,
            |i| async move {
                tokio::time::sleep(SLEEP).await;
                Ok(i)
            },
        );
        group.finish();
    }
}

// ===== cancel =====

/// One way of cancelling `MANY` pending children.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `tokio::spawn` + `Vec<JoinHandle>`; `abort()` on every handle.
    SpawnVecAbort,
    /// `tokio::spawn`, keeping only each task's `AbortHandle` (the
    /// `JoinHandle` dropped at once); `abort()` on every handle. Not one of
    /// the peers: tokio's own cost for a task whose output nobody awaits,
    /// which is what a nursery child is once its `TaskHandle` is dropped.
    SpawnAbortHandles,
    /// `JoinSet::abort_all`.
    JoinSetAbortAll,
    /// `TaskTracker`, each child under `CancellationToken::run_until_cancelled`;
    /// `token.cancel()`.
    TaskTrackerToken,
    /// Dropping the `FuturesUnordered` that holds the children.
    FuturesUnorderedDrop,
    /// Dropping a `buffer_unordered(MANY)` stream.
    BufferUnorderedDrop,
    /// async-scoped `spawn_cancellable`; `Scope::cancel`. Multi-thread only.
    AsyncScopedCancel,
    /// moro; `scope.terminate(..)` from the body.
    MoroTerminate,
    /// `MANY` workers on one async-channel, each running its job under
    /// `run_until_cancelled`; `token.cancel()`.
    WorkerPoolToken,
    /// `Semaphore(MANY)`-gated `tokio::spawn`; `abort()` on every handle.
    SemaphoreAbort,
    /// `n.cancel()` from the body (zero grace: the children are aborted in
    /// the call).
    NurseryCancel,
    /// Dropping the scope future.
    NurseryDrop,
    /// `n.cancel()` from the body of a `scope_local` whose children are
    /// local (zero grace: they are dropped on the scope future's next
    /// step, before the body runs again).
    NurseryLocalCancel,
    /// Dropping the future of a `scope_local` whose children are local.
    NurseryLocalDrop,
}

impl Stop {
    const ALL: [Stop; 14] = [
        Stop::SpawnVecAbort,
        Stop::SpawnAbortHandles,
        Stop::JoinSetAbortAll,
        Stop::TaskTrackerToken,
        Stop::FuturesUnorderedDrop,
        Stop::BufferUnorderedDrop,
        Stop::AsyncScopedCancel,
        Stop::MoroTerminate,
        Stop::WorkerPoolToken,
        Stop::SemaphoreAbort,
        Stop::NurseryCancel,
        Stop::NurseryDrop,
        Stop::NurseryLocalCancel,
        Stop::NurseryLocalDrop,
    ];

    fn label(self) -> &'static str {
        match self {
            Stop::SpawnVecAbort => "spawn+Vec abort()",
            Stop::SpawnAbortHandles => "spawn+AbortHandle abort()",
            Stop::JoinSetAbortAll => "JoinSet abort_all()",
            Stop::TaskTrackerToken => "TaskTracker+token",
            Stop::FuturesUnorderedDrop => "FuturesUnordered drop",
            Stop::BufferUnorderedDrop => "buffer_unordered drop",
            Stop::AsyncScopedCancel => "async-scoped cancel()",
            Stop::MoroTerminate => "moro terminate()",
            Stop::WorkerPoolToken => "worker pool+token",
            Stop::SemaphoreAbort => "Semaphore abort()",
            Stop::NurseryCancel => "nursery n.cancel()",
            Stop::NurseryDrop => "nursery drop scope",
            Stop::NurseryLocalCancel => "nursery local n.cancel()",
            Stop::NurseryLocalDrop => "nursery local drop scope",
        }
    }

    fn runs_on(self, flavor: Flavor) -> bool {
        !matches!(self, Stop::AsyncScopedCancel) || flavor.is_multi_thread()
    }

    /// Starts `MANY` children, waits until each has been polled once, then
    /// cancels them: returns the time from the cancel call until the last
    /// child future has been dropped. Cleans up (untimed) before returning.
    async fn run(self) -> Duration {
        let count = MANY as usize;
        let polled = Countdown::new(count);
        let dropped = Countdown::new(count);
        let child = {
            let (polled, dropped) = (polled.clone(), dropped.clone());
            move || pending_child(&polled, Some(&dropped))
        };
        match self {
            Stop::SpawnVecAbort => {
                let handles: Vec<_> = (0..count).map(|_| tokio::spawn(child())).collect();
                abort_each(&handles, JoinHandle::abort, &polled, &dropped).await
            }
            Stop::SpawnAbortHandles => {
                let handles: Vec<_> = (0..count)
                    .map(|_| tokio::spawn(child()).abort_handle())
                    .collect();
                abort_each(&handles, AbortHandle::abort, &polled, &dropped).await
            }
            Stop::JoinSetAbortAll => {
                let mut set = JoinSet::new();
                for _ in 0..count {
                    set.spawn(child());
                }
                polled.wait().await;
                let clock = Clock::start();
                set.abort_all();
                dropped.wait().await;
                let elapsed = clock.stop();
                while set.join_next().await.is_some() {}
                elapsed
            }
            Stop::TaskTrackerToken => {
                let tracker = TaskTracker::new();
                let token = CancellationToken::new();
                for _ in 0..count {
                    let token = token.clone();
                    let child = child();
                    tracker.spawn(async move { token.run_until_cancelled(child).await });
                }
                polled.wait().await;
                let clock = Clock::start();
                token.cancel();
                dropped.wait().await;
                let elapsed = clock.stop();
                tracker.close();
                tracker.wait().await;
                elapsed
            }
            Stop::FuturesUnorderedDrop => {
                let mut children: FuturesUnordered<_> = (0..count).map(|_| child()).collect();
                tokio::select! {
                    _ = children.next() => unreachable!("the children never finish"),
                    () = polled.wait() => {}
                }
                let clock = Clock::start();
                drop(children);
                dropped.wait().await;
                clock.stop()
            }
            Stop::BufferUnorderedDrop => {
                let mut children = stream::iter(0..count)
                    .map(|_| child())
                    .buffer_unordered(count);
                tokio::select! {
                    _ = children.next() => unreachable!("the children never finish"),
                    () = polled.wait() => {}
                }
                let clock = Clock::start();
                drop(children);
                dropped.wait().await;
                clock.stop()
            }
            Stop::AsyncScopedCancel => {
                let (elapsed, _) = async_scoped::TokioScope::scope_and_block(|scope| {
                    for _ in 0..count {
                        scope.spawn_cancellable(child(), || Ok(0));
                    }
                    // Blocks in place: the children run on the workers.
                    polled.wait_blocking();
                    let clock = Clock::start();
                    scope.cancel();
                    dropped.wait_blocking();
                    clock.stop()
                });
                elapsed
            }
            Stop::MoroTerminate => {
                let clock = std::sync::Mutex::new(None);
                let clock = &clock;
                moro::async_scope!(|scope| -> () {
                    for _ in 0..count {
                        drop(scope.spawn(child()));
                    }
                    polled.wait().await;
                    *clock.lock().unwrap() = Some(Clock::start());
                    scope.terminate(()).await
                })
                .await;
                dropped.wait().await;
                clock
                    .lock()
                    .unwrap()
                    .take()
                    .expect("the body started the clock")
                    .stop()
            }
            Stop::WorkerPoolToken => {
                let token = CancellationToken::new();
                let (jobs_tx, jobs) = async_channel::unbounded::<()>();
                let pool: Vec<_> = (0..count)
                    .map(|_| {
                        let (jobs, token, child) = (jobs.clone(), token.clone(), child.clone());
                        tokio::spawn(async move {
                            token
                                .run_until_cancelled(async move {
                                    while let Ok(()) = jobs.recv().await {
                                        let _never = child().await;
                                    }
                                })
                                .await
                        })
                    })
                    .collect();
                for _ in 0..count {
                    jobs_tx.send(()).await.unwrap();
                }
                polled.wait().await;
                let clock = Clock::start();
                token.cancel();
                dropped.wait().await;
                let elapsed = clock.stop();
                for worker in pool {
                    worker.await.unwrap();
                }
                elapsed
            }
            Stop::SemaphoreAbort => {
                let permits = Arc::new(Semaphore::new(count));
                let mut handles = Vec::with_capacity(count);
                for _ in 0..count {
                    let permit = permits.clone().acquire_owned().await.unwrap();
                    let child = child();
                    handles.push(tokio::spawn(async move {
                        let _permit = permit;
                        child.await
                    }));
                }
                abort_each(&handles, JoinHandle::abort, &polled, &dropped).await
            }
            Stop::NurseryCancel => nursery::scope(|n| async move {
                for _ in 0..count {
                    n.spawn(child());
                }
                polled.wait().await;
                let clock = Clock::start();
                n.cancel();
                dropped.wait().await;
                Ok(clock.stop())
            })
            .await
            .unwrap(),
            Stop::NurseryDrop => {
                let mut scope = Box::pin(nursery::scope(|n| async move {
                    for _ in 0..count {
                        n.spawn(child());
                    }
                    std::future::pending::<Result<(), ()>>().await
                }));
                tokio::select! {
                    _ = &mut scope => unreachable!("the body never returns"),
                    () = polled.wait() => {}
                }
                let clock = Clock::start();
                drop(scope);
                dropped.wait().await;
                clock.stop()
            }
            Stop::NurseryLocalCancel => nursery::scope_local(|n, local| async move {
                for _ in 0..count {
                    local.spawn(child());
                }
                polled.wait().await;
                let clock = Clock::start();
                n.cancel();
                dropped.wait().await;
                Ok(clock.stop())
            })
            .await
            .unwrap(),
            Stop::NurseryLocalDrop => {
                let mut scope = Box::pin(nursery::scope_local(|_n, local| async move {
                    for _ in 0..count {
                        local.spawn(child());
                    }
                    std::future::pending::<Result<(), ()>>().await
                }));
                tokio::select! {
                    _ = &mut scope => unreachable!("the body never returns"),
                    () = polled.wait() => {}
                }
                let clock = Clock::start();
                drop(scope);
                dropped.wait().await;
                clock.stop()
            }
        }
    }
}

/// Waits until every child has been polled, then aborts each of `handles`
/// and times until every child future has been dropped.
async fn abort_each<H>(
    handles: &[H],
    abort: impl Fn(&H),
    polled: &Countdown,
    dropped: &Countdown,
) -> Duration {
    polled.wait().await;
    let clock = Clock::start();
    for handle in handles {
        abort(handle);
    }
    dropped.wait().await;
    clock.stop()
}

fn cancel(c: &mut Criterion) {
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        let mut group = c.benchmark_group(flavor.group("cancel"));
        // Only the cancel is timed (0.3-3 ms); starting the children costs
        // 5-40 ms more an iteration, so the timed budget is small: 130-1300
        // cancels an approach, 2-8 s of wall time.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(100));
        group.measurement_time(Duration::from_millis(400));
        group.throughput(Throughput::Elements(MANY));
        for approach in Stop::ALL {
            if !approach.runs_on(flavor) {
                continue;
            }
            group.bench_function(BenchmarkId::new(approach.label(), MANY), |b| {
                b.to_async(&runtime).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += flavor.body(approach.run()).await;
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

// ===== map =====

/// The per-item work of `map` and `pipeline`: next to nothing, so the
/// figures are the fan-out machinery's own cost per item.
fn light(x: u64) -> u64 {
    black_box(x).wrapping_mul(3).wrapping_add(1)
}

#[derive(Clone, Copy, Debug)]
enum Map {
    /// `nursery::map(0..n, limit, f)`: results in input order.
    Nursery(usize),
    /// `nursery::map_unordered(stream::iter(0..n), limit, f)`, collected.
    NurseryUnordered(usize),
    /// `stream::iter(0..n).map(f).buffered(limit)`, in place.
    Buffered(usize),
    /// `stream::iter(0..n).map(f).buffer_unordered(limit)`, in place.
    BufferUnordered(usize),
    /// `stream::iter(0..n).map(|i| tokio::spawn(f(i))).buffered(limit)`.
    SpawnBuffered(usize),
    /// `limit` workers on one async-channel, results put back in input order.
    WorkerPool(usize),
}

impl Map {
    fn label(self) -> String {
        match self {
            Map::Nursery(limit) => format!("nursery map({limit})"),
            Map::NurseryUnordered(limit) => format!("nursery map_unordered({limit})"),
            Map::Buffered(limit) => format!("buffered({limit})"),
            Map::BufferUnordered(limit) => format!("buffer_unordered({limit})"),
            Map::SpawnBuffered(limit) => format!("spawn+buffered({limit})"),
            Map::WorkerPool(workers) => format!("worker pool({workers})"),
        }
    }

    /// Maps `0..count` through [`light`]; the results, in input order
    /// unless the approach is unordered.
    async fn run(self, count: u64) -> Vec<u64> {
        let f = |i: u64| async move { light(i) };
        match self {
            Map::Nursery(limit) => {
                nursery::map(
                    0..count,
                    limit,
                    move |i| async move { Ok::<_, ()>(f(i).await) },
                )
                .await
                .unwrap()
            }
            Map::NurseryUnordered(limit) => {
                nursery::map_unordered(stream::iter(0..count), limit, move |i| async move {
                    Ok::<_, ()>(f(i).await)
                })
                .map(Result::unwrap)
                .collect()
                .await
            }
            Map::Buffered(limit) => {
                stream::iter(0..count)
                    .map(f)
                    .buffered(limit)
                    .collect()
                    .await
            }
            Map::BufferUnordered(limit) => {
                stream::iter(0..count)
                    .map(f)
                    .buffer_unordered(limit)
                    .collect()
                    .await
            }
            Map::SpawnBuffered(limit) => {
                stream::iter(0..count)
                    .map(|i| tokio::spawn(f(i)))
                    .buffered(limit)
                    .map(Result::unwrap)
                    .collect()
                    .await
            }
            Map::WorkerPool(workers) => {
                let (jobs_tx, jobs) = async_channel::unbounded::<u64>();
                let pool: Vec<_> = (0..workers)
                    .map(|_| {
                        let jobs = jobs.clone();
                        tokio::spawn(async move {
                            let mut done = Vec::new();
                            while let Ok(i) = jobs.recv().await {
                                done.push((i, f(i).await));
                            }
                            done
                        })
                    })
                    .collect();
                drop(jobs);
                for i in 0..count {
                    jobs_tx.send(i).await.unwrap();
                }
                drop(jobs_tx);
                let mut results = vec![0; count as usize];
                for worker in pool {
                    for (i, value) in worker.await.unwrap() {
                        results[i as usize] = value;
                    }
                }
                results
            }
        }
    }
}

fn map(c: &mut Criterion) {
    let mut approaches = Vec::new();
    for limit in [WORKERS, 64] {
        approaches.extend([
            Map::Nursery(limit),
            Map::NurseryUnordered(limit),
            Map::Buffered(limit),
            Map::BufferUnordered(limit),
            Map::SpawnBuffered(limit),
            Map::WorkerPool(limit),
        ]);
    }
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        let mut group = c.benchmark_group(flavor.group("map"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_millis(1500));
        group.throughput(Throughput::Elements(MANY));
        for approach in &approaches {
            group.bench_function(BenchmarkId::new(approach.label(), MANY), |b| {
                b.to_async(&runtime)
                    .iter(|| async { black_box(flavor.body(approach.run(MANY)).await) })
            });
        }
        group.finish();
    }
}

// ===== pipeline =====

/// The three stages' work.
fn stage_a(x: u64) -> u64 {
    light(x)
}
fn stage_b(x: u64) -> u64 {
    light(x) ^ 0x5555
}
fn stage_c(x: u64) -> u64 {
    light(x) >> 1
}

#[derive(Clone, Copy, Debug)]
enum Pipe {
    /// `Pipeline::from_iter(0..n).stage(w, a).stage(w, b).stage(w, c).collect()`.
    Nursery,
    /// `tokio::spawn`ed source and workers; tokio `mpsc` channels with
    /// nursery's capacities (1 after the source, `w` after each stage), the
    /// workers of a stage sharing its receiver behind a `tokio::sync::Mutex`.
    Mpsc,
    /// The same with async-channel (MPMC): no lock around the receiver.
    AsyncChannel,
    /// `stream::iter(..).map(a).buffer_unordered(w).map(b)...`, in place.
    BufferUnordered,
}

impl Pipe {
    fn label(self) -> String {
        let w = STAGE_WORKERS;
        match self {
            Pipe::Nursery => format!("nursery Pipeline(3x{w})"),
            Pipe::Mpsc => format!("hand-written mpsc(3x{w})"),
            Pipe::AsyncChannel => format!("hand-written async-channel(3x{w})"),
            Pipe::BufferUnordered => format!("buffer_unordered chain(3x{w})"),
        }
    }

    async fn run(self, count: u64) -> Vec<u64> {
        let w = STAGE_WORKERS;
        match self {
            Pipe::Nursery => nursery::Pipeline::from_iter(0..count)
                .stage(w, |x| async move { Ok::<_, ()>(stage_a(x)) })
                .stage(w, |x| async move { Ok(stage_b(x)) })
                .stage(w, |x| async move { Ok(stage_c(x)) })
                .collect()
                .await
                .unwrap(),
            Pipe::Mpsc => {
                let (source_tx, source) = mpsc::channel(1);
                let mut tasks = vec![tokio::spawn(async move {
                    for i in 0..count {
                        if source_tx.send(i).await.is_err() {
                            break;
                        }
                    }
                })];
                let items = mpsc_stage(source, w, stage_a, &mut tasks);
                let items = mpsc_stage(items, w, stage_b, &mut tasks);
                let mut items = mpsc_stage(items, w, stage_c, &mut tasks);
                let mut results = Vec::new();
                while let Some(item) = items.recv().await {
                    results.push(item);
                }
                for task in tasks {
                    task.await.unwrap();
                }
                results
            }
            Pipe::AsyncChannel => {
                let (source_tx, source) = async_channel::bounded(1);
                let mut tasks = vec![tokio::spawn(async move {
                    for i in 0..count {
                        if source_tx.send(i).await.is_err() {
                            break;
                        }
                    }
                })];
                let items = channel_stage(source, w, stage_a, &mut tasks);
                let items = channel_stage(items, w, stage_b, &mut tasks);
                let items = channel_stage(items, w, stage_c, &mut tasks);
                let mut results = Vec::new();
                while let Ok(item) = items.recv().await {
                    results.push(item);
                }
                for task in tasks {
                    task.await.unwrap();
                }
                results
            }
            Pipe::BufferUnordered => {
                stream::iter(0..count)
                    .map(|x| async move { stage_a(x) })
                    .buffer_unordered(w)
                    .map(|x| async move { stage_b(x) })
                    .buffer_unordered(w)
                    .map(|x| async move { stage_c(x) })
                    .buffer_unordered(w)
                    .collect()
                    .await
            }
        }
    }
}

/// A hand-written stage: `workers` tasks share `items` behind a lock and
/// send `f(item)` on; the output channel holds `workers` items.
fn mpsc_stage(
    items: mpsc::Receiver<u64>,
    workers: usize,
    f: fn(u64) -> u64,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> mpsc::Receiver<u64> {
    let items = Arc::new(tokio::sync::Mutex::new(items));
    let (out_tx, out) = mpsc::channel(workers);
    for _ in 0..workers {
        let (items, out_tx) = (items.clone(), out_tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = items.lock().await.recv().await;
                let Some(item) = next else { break };
                if out_tx.send(f(item)).await.is_err() {
                    break;
                }
            }
        }));
    }
    out
}

/// [`mpsc_stage`] over async-channel: every worker holds a receiver.
fn channel_stage(
    items: async_channel::Receiver<u64>,
    workers: usize,
    f: fn(u64) -> u64,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> async_channel::Receiver<u64> {
    let (out_tx, out) = async_channel::bounded(workers);
    for _ in 0..workers {
        let (items, out_tx) = (items.clone(), out_tx.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(item) = items.recv().await {
                if out_tx.send(f(item)).await.is_err() {
                    break;
                }
            }
        }));
    }
    out
}

fn pipeline(c: &mut Criterion) {
    for flavor in Flavor::from_env() {
        let runtime = flavor.runtime();
        let mut group = c.benchmark_group(flavor.group("pipeline"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(MANY));
        for approach in [
            Pipe::Nursery,
            Pipe::Mpsc,
            Pipe::AsyncChannel,
            Pipe::BufferUnordered,
        ] {
            group.bench_function(BenchmarkId::new(approach.label(), MANY), |b| {
                b.to_async(&runtime).iter(|| async {
                    let results = flavor.body(approach.run(MANY)).await;
                    assert_eq!(results.len(), MANY as usize);
                    black_box(results)
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // No plots (nothing reads them); fewer bootstrap resamples than the
    // default 100,000, which only narrow the confidence intervals.
    config = Criterion::default().without_plots().nresamples(20_000);
    targets = tiny, cpu, sleep, cancel, map, pipeline
}
/// The criterion groups, or instead the paired rounds
/// (`NURSERY_BENCH_PAIRED`; see `peers/paired.rs`) or one approach's
/// instruction count (`NURSERY_BENCH_COUNT`; see `peers/counted.rs`).
fn main() {
    if counted::run_if_asked() || paired::run_if_asked() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
