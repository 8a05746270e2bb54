//! Property tests over random trees of nested scopes.
//!
//! Each case is a tree up to four scopes deep with up to 50 children in
//! all. A child succeeds, fails, panics, sleeps, hangs until cancelled,
//! spawns siblings through its `Nursery` clone, or opens a scope of its
//! own; every scope has a random limit, timeout, grace period and policy
//! (fail-fast or `collect_errors`). Half the cases run on a multi-thread
//! runtime with two workers in real time, half on a current-thread runtime
//! with a paused clock, where the order of events is exact.
//!
//! After every case:
//!
//! - no child future is alive when the root scope returns (G1), and no
//!   tokio task of the runtime is alive either (on the multi-thread
//!   runtime, once the workers have taken the tasks whose futures they
//!   just dropped off their list: see `nursery_tests::settled_alive_tasks`);
//! - no child ran twice, and every success was counted once; a root scope
//!   that returns `Ok` ran every child of the tree to success;
//! - every error returned (as `error` or in `suppressed`, through every
//!   level of nesting) is one that a child returned, and none twice; an
//!   error a child returned while its scope was not cancelled is never
//!   dropped (G2; checked where the order is exact);
//! - a scope re-raises a panic if and only if one happened under it, and
//!   the payload is one of those (G3);
//! - a child's future is dropped unfinished only when its scope has been
//!   cancelled, and once a child's failure or panic has been recorded,
//!   every child of that scope or below that starts work afterwards sees
//!   the cancel (G2, G3, G4; where the order is exact); a scope that says
//!   it is cancelled refuses
//!   new children, and nothing spawned into a cancelled scope runs;
//! - where the tree leaves one outcome possible (no failure, or no cancel
//!   of any kind), the result is exactly that outcome.
//!
//! `PROPTEST_CASES` sets the number of cases (default 1024, about 4 s in a
//! debug build here).

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures_util::FutureExt;
use nursery::{Builder, Error, Nursery};
use nursery_tests::within;
use proptest::collection::vec;
use proptest::prelude::*;

/// A failing child's error: the ids of the failed children it carries (a
/// child that opened a scope relays the errors of that scope; empty for a
/// scope that timed out or was cancelled).
type E = Vec<u32>;

/// The payload of a child's panic: the child's id.
#[derive(Debug)]
struct PanicId(u32);

const DEFAULT_CASES: u32 = 1024;
const MAX_CHILDREN: usize = 50;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ===== the generated tree =====

#[derive(Clone, Debug)]
enum Kind {
    Succeed,
    Fail,
    Panic,
    /// Sleeps this many milliseconds (or until cancelled), then succeeds.
    Sleep(u64),
    /// Waits for the cancel, then returns.
    Hang,
    /// Spawns these siblings into its own scope, then succeeds.
    Spawn(Vec<Node>),
    /// Opens a scope of its own, relaying its outcome.
    Scope(Spec),
}

#[derive(Clone, Debug)]
struct Node {
    id: u32,
    kind: Kind,
}

#[derive(Clone, Debug)]
struct Spec {
    id: u32,
    limit: Option<usize>,
    /// Milliseconds.
    timeout: Option<u64>,
    /// Milliseconds.
    grace: Option<u64>,
    collect: bool,
    children: Vec<Node>,
}

#[derive(Clone, Debug)]
struct Case {
    root: Spec,
    multi_thread: bool,
    children: usize,
    scopes: usize,
}

/// Which kinds of trouble a tree may contain: masks keep a good share of
/// cases simple enough for an exact expected outcome.
#[derive(Clone, Copy, Debug)]
struct Allow {
    fail: bool,
    panic: bool,
    hang: bool,
    timeouts: bool,
    all_collect: bool,
}

fn leaf() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Succeed),
        2 => Just(Kind::Fail),
        1 => Just(Kind::Panic),
        3 => (0..4u64).prop_map(Kind::Sleep),
        1 => Just(Kind::Hang),
    ]
}

fn spec(children: impl Strategy<Value = Vec<Node>>) -> impl Strategy<Value = Spec> {
    (
        proptest::option::weighted(0.5, 1..=4usize),
        proptest::option::weighted(0.4, 1..30u64),
        proptest::option::weighted(0.5, 0..4u64),
        any::<bool>(),
        children,
    )
        .prop_map(|(limit, timeout, grace, collect, children)| Spec {
            id: 0,
            limit,
            timeout,
            grace,
            collect,
            children,
        })
}

fn node(kind: Kind) -> Node {
    Node { id: 0, kind }
}

fn kind() -> impl Strategy<Value = Kind> {
    // Three levels below the root scope: at most four scopes deep.
    leaf().prop_recursive(3, 40, 5, |inner| {
        let child = inner.prop_map(node);
        prop_oneof![
            vec(child.clone(), 1..4).prop_map(Kind::Spawn),
            spec(vec(child, 0..5)).prop_map(Kind::Scope),
        ]
    })
}

fn allow() -> impl Strategy<Value = Allow> {
    use proptest::bool::weighted;
    (
        weighted(0.7),
        weighted(0.3),
        weighted(0.3),
        weighted(0.5),
        weighted(0.25),
    )
        .prop_map(|(fail, panic, hang, timeouts, all_collect)| Allow {
            fail,
            panic,
            hang,
            timeouts,
            all_collect,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        spec(vec(kind().prop_map(node), 1..6)),
        allow(),
        any::<bool>(),
    )
        .prop_map(|(mut root, allow, multi_thread)| {
            restrict(&mut root, allow);
            let mut budget = MAX_CHILDREN;
            prune(&mut root.children, &mut budget);
            let (mut children, mut scopes) = (0, 0);
            number(&mut root, &mut children, &mut scopes);
            if contains(&root, &|kind| matches!(kind, Kind::Hang)) {
                // Something must end the hanging children.
                root.timeout.get_or_insert(20);
            }
            Case {
                root,
                multi_thread,
                children: children as usize,
                scopes: scopes as usize,
            }
        })
}

fn restrict(spec: &mut Spec, allow: Allow) {
    if !allow.timeouts {
        spec.timeout = None;
    }
    if allow.all_collect {
        spec.collect = true;
    }
    for child in &mut spec.children {
        restrict_node(child, allow);
    }
}

fn restrict_node(node: &mut Node, allow: Allow) {
    match &mut node.kind {
        Kind::Fail if !allow.fail => node.kind = Kind::Succeed,
        Kind::Panic if !allow.panic => node.kind = Kind::Succeed,
        Kind::Hang if !allow.hang => node.kind = Kind::Succeed,
        Kind::Spawn(children) => children
            .iter_mut()
            .for_each(|child| restrict_node(child, allow)),
        Kind::Scope(spec) => restrict(spec, allow),
        _ => {}
    }
}

/// Keeps the first `budget` children of the tree, in preorder.
fn prune(children: &mut Vec<Node>, budget: &mut usize) {
    for i in 0..children.len() {
        if *budget == 0 {
            children.truncate(i);
            return;
        }
        *budget -= 1;
        match &mut children[i].kind {
            Kind::Spawn(inner) => prune(inner, budget),
            Kind::Scope(spec) => prune(&mut spec.children, budget),
            _ => {}
        }
    }
}

fn number(spec: &mut Spec, children: &mut u32, scopes: &mut u32) {
    spec.id = *scopes;
    *scopes += 1;
    for child in &mut spec.children {
        number_node(child, children, scopes);
    }
}

fn number_node(node: &mut Node, children: &mut u32, scopes: &mut u32) {
    node.id = *children;
    *children += 1;
    match &mut node.kind {
        Kind::Spawn(inner) => inner
            .iter_mut()
            .for_each(|child| number_node(child, children, scopes)),
        Kind::Scope(spec) => number(spec, children, scopes),
        _ => {}
    }
}

fn contains(spec: &Spec, pred: &dyn Fn(&Kind) -> bool) -> bool {
    spec.children.iter().any(|child| node_contains(child, pred))
}

fn node_contains(node: &Node, pred: &dyn Fn(&Kind) -> bool) -> bool {
    pred(&node.kind)
        || match &node.kind {
            Kind::Spawn(inner) => inner.iter().any(|child| node_contains(child, pred)),
            Kind::Scope(spec) => contains(spec, pred),
            _ => false,
        }
}

fn any_scope(spec: &Spec, pred: &dyn Fn(&Spec) -> bool) -> bool {
    pred(spec)
        || contains(spec, &|kind| match kind {
            Kind::Scope(inner) => any_scope(inner, pred),
            _ => false,
        })
}

fn each_node(spec: &Spec, f: &mut dyn FnMut(&Node)) {
    fn walk(node: &Node, f: &mut dyn FnMut(&Node)) {
        f(node);
        match &node.kind {
            Kind::Spawn(inner) => inner.iter().for_each(|child| walk(child, f)),
            Kind::Scope(spec) => spec.children.iter().for_each(|child| walk(child, f)),
            _ => {}
        }
    }
    spec.children.iter().for_each(|child| walk(child, f));
}

// ===== what a run records =====

/// A point where a child is about to do work: it asked `check()` first.
struct Step {
    seq: usize,
    /// The scopes it runs in, outermost first.
    chain: Arc<[u32]>,
    cancelled: bool,
}

/// The errors a scope must return: returned by its children while it was
/// not cancelled (recorded on the current-thread runtime only, where
/// nothing can cancel the scope between the check and the return).
#[derive(Default)]
struct Required {
    errors: usize,
    ids: Vec<u32>,
}

struct Run {
    exact_order: bool,
    seq: AtomicUsize,
    started: Vec<AtomicUsize>,
    succeeded: Vec<AtomicUsize>,
    /// Spawned (by the body or a sibling) when the scope was cancelled
    /// already: must never run.
    spawned_cancelled: Vec<AtomicBool>,
    /// Ids of the `Fail` children that returned their error.
    failed: Mutex<Vec<u32>>,
    /// Ids of the `Panic` children that panicked.
    panicked: Mutex<Vec<u32>>,
    /// Per scope: the panics that happened under it, at any depth, as ids.
    panics_in: Vec<Mutex<Vec<u32>>>,
    required: Vec<Mutex<Required>>,
    /// Failures (under fail-fast) and panics, by sequence number and scope.
    cancels: Mutex<Vec<(usize, u32)>>,
    steps: Mutex<Vec<Step>>,
    /// Child futures alive right now.
    alive: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Run {
    fn new(case: &Case) -> Arc<Run> {
        Arc::new(Run {
            exact_order: !case.multi_thread,
            seq: AtomicUsize::new(0),
            started: (0..case.children).map(|_| AtomicUsize::new(0)).collect(),
            succeeded: (0..case.children).map(|_| AtomicUsize::new(0)).collect(),
            spawned_cancelled: (0..case.children).map(|_| AtomicBool::new(false)).collect(),
            failed: Mutex::default(),
            panicked: Mutex::default(),
            panics_in: (0..case.scopes).map(|_| Mutex::default()).collect(),
            required: (0..case.scopes).map(|_| Mutex::default()).collect(),
            cancels: Mutex::default(),
            steps: Mutex::default(),
            alive: AtomicUsize::new(0),
            violations: Mutex::default(),
        })
    }

    fn violate(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Asks `check()` before doing work, and records the answer.
    fn step(&self, at: &At) -> bool {
        let cancelled = nursery::check().is_err();
        let seq = self.seq.fetch_add(1, SeqCst);
        self.steps.lock().unwrap().push(Step {
            seq,
            chain: at.chain.clone(),
            cancelled,
        });
        cancelled
    }

    /// A failure (under fail-fast) or panic in `at`'s scope, about to be
    /// recorded by the scope: the scope cancels from here on.
    fn cancelling(&self, at: &At) {
        let seq = self.seq.fetch_add(1, SeqCst);
        self.cancels.lock().unwrap().push((seq, at.scope));
    }

    /// A child of `at`'s scope is about to return `error`.
    fn failing(&self, at: &At, n: &Nursery<E>, error: &E) {
        if self.exact_order && !n.is_cancelled() {
            let mut required = self.required[at.scope as usize].lock().unwrap();
            required.errors += 1;
            required.ids.extend(error);
        }
        if at.fail_fast {
            self.cancelling(at);
        }
    }

    /// A child of `at`'s scope is about to panic: child `id`'s own panic
    /// (`relayed` false), or one re-raised by a scope the child opened.
    fn panicking(&self, at: &At, id: u32, relayed: bool) {
        if !relayed {
            // A panic under a scope, however deep, is that scope's to
            // re-raise, even if a scope in between was dropped.
            for &scope in at.chain.iter() {
                self.panics_in[scope as usize].lock().unwrap().push(id);
            }
        }
        self.cancelling(at);
    }
}

/// Where a child runs: its scope, the scopes around it, the policy.
struct At {
    scope: u32,
    chain: Arc<[u32]>,
    fail_fast: bool,
}

/// Counts a child future alive; checks that it is dropped unfinished only
/// once its scope has been cancelled.
struct Live {
    run: Arc<Run>,
    id: u32,
    n: Nursery<E>,
    finished: bool,
}

impl Live {
    fn new(run: &Arc<Run>, id: u32, n: &Nursery<E>) -> Live {
        run.alive.fetch_add(1, SeqCst);
        Live {
            run: run.clone(),
            id,
            n: n.clone(),
            finished: false,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A panicking child is unwinding: its scope hears of it next.
        if !self.finished && !std::thread::panicking() && !self.n.is_cancelled() {
            self.run.violate(format!(
                "child {} was dropped unfinished while its scope was not cancelled",
                self.id
            ));
        }
        self.run.alive.fetch_sub(1, SeqCst);
    }
}

// ===== running the tree =====

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn builder(spec: &Spec) -> Builder {
    let mut builder = Nursery::builder();
    if let Some(limit) = spec.limit {
        builder = builder.limit(limit);
    }
    if let Some(timeout) = spec.timeout {
        builder = builder.timeout(ms(timeout));
    }
    if let Some(grace) = spec.grace {
        builder = builder.grace(ms(grace));
    }
    if spec.collect {
        builder = builder.collect_errors();
    }
    builder
}

fn spawn(n: &Nursery<E>, node: &Node, run: &Arc<Run>, at: &Arc<At>) {
    let cancelled = n.is_cancelled();
    if cancelled {
        run.spawned_cancelled[node.id as usize].store(true, SeqCst);
    }
    let handle = n.spawn(child(node.clone(), n.clone(), run.clone(), at.clone()));
    if cancelled && !handle.is_finished() {
        run.violate(format!(
            "scope {} said it was cancelled, then accepted child {}",
            at.scope, node.id
        ));
    }
}

/// Opens the scope `spec` under the current one and spawns its children.
fn open(spec: Spec, run: Arc<Run>, outer: &[u32]) -> Boxed<Result<(), Error<E>>> {
    let chain: Arc<[u32]> = outer.iter().copied().chain([spec.id]).collect();
    let at = Arc::new(At {
        scope: spec.id,
        chain,
        fail_fast: !spec.collect,
    });
    let scope = builder(&spec).scope(move |n: Nursery<E>| async move {
        for child in &spec.children {
            spawn(&n, child, &run, &at);
        }
        Ok(())
    });
    Box::pin(scope)
}

fn child(node: Node, n: Nursery<E>, run: Arc<Run>, at: Arc<At>) -> Boxed<Result<(), E>> {
    Box::pin(async move {
        let id = node.id;
        let mut live = Live::new(&run, id, &n);
        if run.started[id as usize].fetch_add(1, SeqCst) != 0 {
            run.violate(format!("child {id} ran twice"));
        }
        if run.spawned_cancelled[id as usize].load(SeqCst) {
            run.violate(format!(
                "child {id} was spawned into a cancelled scope and still ran"
            ));
        }
        let result = work(&node, &n, &run, &at).await;
        live.finished = true;
        result
    })
}

async fn work(node: &Node, n: &Nursery<E>, run: &Arc<Run>, at: &Arc<At>) -> Result<(), E> {
    let id = node.id;
    // A well-behaved child: it starts no work once its scope is cancelled.
    if run.step(at) {
        return Ok(());
    }
    let succeeded = || run.succeeded[id as usize].fetch_add(1, SeqCst);
    match &node.kind {
        Kind::Succeed => {
            succeeded();
            Ok(())
        }
        Kind::Fail => {
            run.failed.lock().unwrap().push(id);
            let error = vec![id];
            run.failing(at, n, &error);
            Err(error)
        }
        Kind::Panic => {
            run.panicked.lock().unwrap().push(id);
            run.panicking(at, id, false);
            std::panic::panic_any(PanicId(id));
        }
        Kind::Sleep(millis) => {
            tokio::select! {
                () = tokio::time::sleep(ms(*millis)) => {}
                _ = nursery::cancelled() => return Ok(()),
            }
            if !run.step(at) {
                succeeded();
            }
            Ok(())
        }
        Kind::Hang => {
            nursery::cancelled().await;
            Ok(())
        }
        Kind::Spawn(siblings) => {
            for sibling in siblings {
                spawn(n, sibling, run, at);
            }
            succeeded();
            Ok(())
        }
        Kind::Scope(spec) => {
            let inner = spec.id;
            let outcome = AssertUnwindSafe(open(spec.clone(), run.clone(), &at.chain))
                .catch_unwind()
                .await;
            match check_outcome(run, inner, outcome) {
                Ok(()) => {
                    succeeded();
                    Ok(())
                }
                Err(Relay::Error(error)) => {
                    run.failing(at, n, &error);
                    Err(error)
                }
                Err(Relay::Panic(payload, payload_id)) => {
                    run.panicking(at, payload_id, true);
                    resume_unwind(payload)
                }
            }
        }
    }
}

/// What a child that opened a scope passes on.
enum Relay {
    Error(E),
    Panic(Box<dyn Any + Send>, u32),
}

/// Checks the outcome of scope `scope` against what happened in it, and
/// says what its child relays.
fn check_outcome(
    run: &Run,
    scope: u32,
    outcome: std::thread::Result<Result<(), Error<E>>>,
) -> Result<(), Relay> {
    let panics = run.panics_in[scope as usize].lock().unwrap().clone();
    let required = std::mem::take(&mut *run.required[scope as usize].lock().unwrap());
    let relay = match outcome {
        Err(payload) => {
            let Some(&PanicId(payload_id)) = payload.downcast_ref::<PanicId>() else {
                let message = nursery_tests::panic_message(&*payload);
                run.violate(format!(
                    "scope {scope} re-raised a panic no child raised: {message}"
                ));
                return Err(Relay::Panic(payload, u32::MAX));
            };
            if !panics.contains(&payload_id) {
                run.violate(format!(
                    "scope {scope} re-raised the panic of child {payload_id}, not one under it ({panics:?})"
                ));
            }
            return Err(Relay::Panic(payload, payload_id));
        }
        Ok(Ok(())) => Ok(()),
        Ok(Err(Error::Failed {
            error, suppressed, ..
        })) => {
            let all: Vec<E> = std::iter::once(error).chain(suppressed).collect();
            if all.len() < required.errors {
                run.violate(format!(
                    "scope {scope} returned {} errors, but {} were returned to it before any cancel",
                    all.len(),
                    required.errors
                ));
            }
            let ids: Vec<u32> = all.into_iter().flatten().collect();
            for id in &required.ids {
                if !ids.contains(id) {
                    run.violate(format!(
                        "scope {scope} dropped the error of child {id}, returned before any cancel"
                    ));
                }
            }
            Err(Relay::Error(ids))
        }
        Ok(Err(Error::TimedOut | Error::Cancelled)) => {
            if required.errors > 0 {
                run.violate(format!(
                    "scope {scope} returned an interruption, dropping {} errors returned before it",
                    required.errors
                ));
            }
            Err(Relay::Error(Vec::new()))
        }
        Ok(Err(other)) => {
            run.violate(format!("scope {scope}: unknown outcome {other:?}"));
            Err(Relay::Error(Vec::new()))
        }
    };
    if !panics.is_empty() {
        run.violate(format!("scope {scope} swallowed the panics of {panics:?}"));
    }
    if matches!(relay, Ok(())) && required.errors > 0 {
        run.violate(format!(
            "scope {scope} returned Ok, dropping {} errors",
            required.errors
        ));
    }
    relay
}

/// Keeps the expected panics of the children quiet; any other panic is
/// reported as usual.
fn quiet_child_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<PanicId>().is_none() {
                default(info);
            }
        }));
    });
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }
}

/// Runs the tree and checks every invariant; the list of violations.
fn run_case(case: &Case) -> Vec<String> {
    quiet_child_panics();
    let run = Run::new(case);
    let rt = runtime(case.multi_thread);
    let root = case.root.clone();
    let in_rt = run.clone();
    let (outcome, alive_tasks, alive_children) = rt.block_on(async move {
        let outcome = within(
            "the root scope",
            AssertUnwindSafe(open(root, in_rt.clone(), &[])).catch_unwind(),
        )
        .await;
        // Right after the return: no child future may be alive (G1).
        let alive_children = in_rt.alive.load(SeqCst);
        (
            outcome,
            nursery_tests::settled_alive_tasks(),
            alive_children,
        )
    });
    if alive_children != 0 {
        run.violate(format!(
            "{alive_children} child futures alive after the root scope returned"
        ));
    }
    if alive_tasks != 0 {
        run.violate(format!(
            "{alive_tasks} tokio tasks alive after the root scope returned"
        ));
    }
    let root_ok = matches!(outcome, Ok(Ok(())));
    let root_result = match check_outcome(&run, 0, outcome) {
        Ok(()) => Ok(()),
        Err(Relay::Error(ids)) => Err(Some(ids)),
        Err(Relay::Panic(..)) => Err(None),
    };
    drop(rt);
    check_run(case, &run, root_ok, &root_result);
    std::mem::take(&mut *run.violations.lock().unwrap())
}

fn check_run(case: &Case, run: &Run, root_ok: bool, root: &Result<(), Option<Vec<u32>>>) {
    let tree = &case.root;
    for (id, count) in run.succeeded.iter().enumerate() {
        if count.load(SeqCst) > 1 {
            run.violate(format!("child {id} counted its success twice"));
        }
    }

    // Every error returned is one that a child returned, none twice.
    let failed = run.failed.lock().unwrap().clone();
    if let Err(Some(ids)) = root {
        let mut seen = Vec::new();
        for id in ids {
            if !failed.contains(id) {
                run.violate(format!("error of child {id} returned, but it never failed"));
            }
            if seen.contains(id) {
                run.violate(format!("error of child {id} returned twice"));
            }
            seen.push(*id);
        }
    }

    // A panic anywhere in the tree reaches the top.
    let panicked = run.panicked.lock().unwrap().clone();
    let raised = matches!(root, Err(None));
    if raised == panicked.is_empty() {
        run.violate(format!(
            "children {panicked:?} panicked, but the root scope {} a panic",
            if raised {
                "re-raised"
            } else {
                "did not re-raise"
            }
        ));
    }

    // Ok means the whole tree ran to success.
    if root_ok {
        each_node(tree, &mut |node| {
            if run.succeeded[node.id as usize].load(SeqCst) != 1 {
                run.violate(format!(
                    "the root returned Ok, but child {} ({:?}) did not succeed once",
                    node.id, node.kind
                ));
            }
        });
    }

    // Once a failure or panic is recorded, children of that scope and
    // below that start work see the cancel. Exact only where nothing runs
    // between the child's return and its scope's bookkeeping.
    if run.exact_order {
        let cancels = run.cancels.lock().unwrap();
        let steps = run.steps.lock().unwrap();
        for &(at, scope) in cancels.iter() {
            for step in steps.iter() {
                if step.seq > at && step.chain.contains(&scope) && !step.cancelled {
                    run.violate(format!(
                        "a child under scope {scope} started work (step {}) after the failure or panic at step {at}",
                        step.seq
                    ));
                }
            }
        }
    }

    // Exact outcomes, where the tree leaves only one.
    let has = |pred: &dyn Fn(&Kind) -> bool| contains(tree, pred);
    let calm = !has(&|kind| matches!(kind, Kind::Panic | Kind::Hang))
        && !any_scope(tree, &|spec| spec.timeout.is_some());
    let no_failures = !has(&|kind| matches!(kind, Kind::Fail));
    if calm && no_failures && !root_ok {
        run.violate(format!(
            "nothing could fail or cancel, but the root returned {root:?}"
        ));
    }
    if calm && !any_scope(tree, &|spec| !spec.collect) {
        // Nothing is ever cancelled: every child runs, every error returns.
        let mut expected: Vec<u32> = Vec::new();
        each_node(tree, &mut |node| {
            if matches!(node.kind, Kind::Fail) {
                expected.push(node.id);
            }
        });
        let mut got = match root {
            Ok(()) => Vec::new(),
            Err(Some(ids)) => ids.clone(),
            Err(None) => Vec::new(),
        };
        got.sort_unstable();
        if got != expected {
            run.violate(format!(
                "with collect_errors everywhere, expected the errors of {expected:?}, got {got:?}"
            ));
        }
        each_node(tree, &mut |node| {
            let fails_below = match &node.kind {
                Kind::Fail => true,
                Kind::Scope(spec) => contains(spec, &|kind| matches!(kind, Kind::Fail)),
                _ => false,
            };
            let count = run.succeeded[node.id as usize].load(SeqCst);
            if count != usize::from(!fails_below) {
                run.violate(format!(
                    "with nothing cancelled, child {} ({:?}) counted {count} successes",
                    node.id, node.kind
                ));
            }
        });
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_trees_keep_every_guarantee(case in case()) {
        let violations = run_case(&case);
        prop_assert!(violations.is_empty(), "{:#?}\nin {:#?}", violations, case);
    }
}
