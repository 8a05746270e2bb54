//! nursery against the peers it replaces. Run with
//! `cargo bench -p nursery-tests --bench peers`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const TINY: u64 = 100_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn tiny(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tiny");
    group.throughput(Throughput::Elements(TINY));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function(BenchmarkId::new("spawn+Vec", TINY), |b| {
        b.to_async(&rt).iter(|| async {
            let handles: Vec<_> = (0..TINY)
                .map(|i| tokio::spawn(async move { black_box(i) }))
                .collect();
            for handle in handles {
                black_box(handle.await.unwrap());
            }
        })
    });
    group.bench_function(BenchmarkId::new("JoinSet", TINY), |b| {
        b.to_async(&rt).iter(|| async {
            let mut set = JoinSet::new();
            for i in 0..TINY {
                set.spawn(async move { black_box(i) });
            }
            while let Some(value) = set.join_next().await {
                black_box(value.unwrap());
            }
        })
    });
    group.bench_function(BenchmarkId::new("nursery", TINY), |b| {
        b.to_async(&rt).iter(|| async {
            nursery::scope(|n| async move {
                for i in 0..TINY {
                    n.spawn(async move { Ok::<_, ()>(black_box(i)) });
                }
                Ok(())
            })
            .await
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, tiny);
criterion_main!(benches);
