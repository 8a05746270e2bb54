//! What [`dump`](crate::dump()) and leak reports show: [`Dump`],
//! [`ScopeSnapshot`] and [`TaskSnapshot`] with their states, their text
//! form, and scope paths.
//!
//! A snapshot tree may be any number of scopes deep: it is printed,
//! searched, cloned and dropped with loops over explicit stacks, never a
//! recursion (`tree.rs`); its text is made in `text.rs`.

mod await_points;
#[cfg(feature = "serde")]
mod serial;
mod text;
mod tree;

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use tokio::task::Id;

use crate::clock::Stamp;
use crate::id::{Name, TaskInfo};
use crate::sync::StdArc;

pub use self::await_points::AwaitPoints;
pub(crate) use self::await_points::{Traces, take as take_traces};
use self::text::Indent;
pub(crate) use self::text::{Age, DisplayName, PATH_HEAD, PATH_TAIL, scope_path};
use self::tree::{Node, Nodes, find};

/// What a task is doing, in a [`Dump`] or a leak report.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     let opened = async { while nursery::dump().find("inner").is_none() { tokio::task::yield_now().await; } };
/// #     tokio::time::timeout(std::time::Duration::from_secs(10), opened).await.expect("`inner` opens");
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// let waiting = crawl.tasks().iter().find(|task| task.name() == Some("waiting")).unwrap();
/// assert_eq!(fetch.state(), nursery::TaskState::Running);
/// assert_eq!(waiting.state(), nursery::TaskState::Queued);
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Started and not finished.
    Running,
    /// Waiting for room under its scope's limit; not a tokio task yet.
    Queued,
    /// Its scope has been cancelled (or dropped) and it has not ended yet.
    Cancelling,
    /// Inside a [`shield`](crate::shield): runs on through a cancel until
    /// it leaves it.
    Shielded,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Queued => "queued",
            TaskState::Cancelling => "cancelling",
            TaskState::Shielded => "shielded",
        })
    }
}

/// What a scope is doing, in a [`Dump`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     let opened = async { while nursery::dump().find("inner").is_none() { tokio::task::yield_now().await; } };
/// #     tokio::time::timeout(std::time::Duration::from_secs(10), opened).await.expect("`inner` opens");
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// assert_eq!(crawl.state(), nursery::ScopeState::Open);
/// assert_eq!(crawl.state().to_string(), "open");
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScopeState {
    /// Running its body or joining its children.
    Open,
    /// Cancelled, waiting for its children to end.
    Cancelling,
    /// Its future was dropped before it finished; some of its children have
    /// not ended yet.
    Dropped,
}

impl fmt::Display for ScopeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopeState::Open => "open",
            ScopeState::Cancelling => "cancelling",
            ScopeState::Dropped => "dropped",
        })
    }
}

/// One task as it was when a [`Dump`] or a leak report was taken.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     let opened = async { while nursery::dump().find("inner").is_none() { tokio::task::yield_now().await; } };
/// #     tokio::time::timeout(std::time::Duration::from_secs(10), opened).await.expect("`inner` opens");
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// // task `fetch` spawned at FILE:LINE:COL: running, age 0ms
/// println!("{fetch}");
/// assert_eq!(fetch.name(), Some("fetch"));
/// println!("`fetch` was spawned at {}", fetch.location());
/// assert!(fetch.age() < std::time::Duration::from_secs(60));
/// assert_eq!(fetch.state(), nursery::TaskState::Running);
/// assert_eq!(fetch.scope_path(), "`crawl`");
/// // The scope `opener` opened is shown under it, not under `crawl`.
/// assert_eq!(opener.scopes()[0].name(), Some("inner"));
/// assert!(fetch.scopes().is_empty());
/// // Its own fields, and how many scopes are open inside it.
/// assert!(format!("{opener:?}").ends_with(", scopes: 1 }"));
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
///
/// Its `Debug` form shows the task's own fields and how many scopes are
/// open inside it, not those scopes: the tree below a task may be any
/// number of levels deep. Print a [`Dump`] or a [`ScopeSnapshot`] for the
/// tree.
pub struct TaskSnapshot {
    pub(crate) name: Option<Name>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) age: Duration,
    pub(crate) state: TaskState,
    pub(crate) scope_path: String,
    /// The tokio task's id; `None` while queued, and for a local child.
    pub(crate) id: Option<Id>,
    /// A local child, polled by its scope's future rather than a task of
    /// its own.
    pub(crate) local: bool,
    /// A blocking child, on tokio's blocking pool: no abort can stop it.
    pub(crate) blocking: bool,
    /// Scopes opened inside this task.
    pub(crate) scopes: Vec<ScopeSnapshot>,
    /// Where it waits, from a task dump.
    pub(crate) trace: Option<StdArc<str>>,
}

impl TaskSnapshot {
    pub(crate) fn new(
        info: &TaskInfo,
        id: Option<Id>,
        state: TaskState,
        path: &str,
        now: Stamp,
    ) -> Self {
        TaskSnapshot {
            name: info.name.clone(),
            location: info.location,
            age: info.started.until(now),
            state,
            scope_path: path.to_owned(),
            id,
            local: false,
            blocking: false,
            scopes: Vec::new(),
            trace: None,
        }
    }

    /// The same snapshot, of a blocking child if `blocking`.
    pub(crate) fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// Whether this is a blocking child (spawned with
    /// [`Nursery::spawn_blocking`](crate::Nursery::spawn_blocking)): a
    /// closure on tokio's blocking pool, which no abort can stop. A
    /// blocking child that is `cancelling` long after a cancel is the
    /// usual reason a shutdown hangs: it ends only when its closure
    /// returns (it should watch its token).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().name("io").scope(|n| async move {
    ///     let (release, wait) = std::sync::mpsc::channel::<()>();
    ///     n.spawn_blocking_named("read", move |_token| {
    ///         let _ = wait.recv();
    ///         Ok::<_, ()>(())
    ///     });
    ///     let dump = nursery::dump();
    ///     let read = &dump.find("io").unwrap().tasks()[0];
    ///     assert!(read.is_blocking());
    ///     assert!(read.to_string().starts_with("blocking task `read` spawned at"));
    ///     release.send(()).unwrap();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// The same snapshot, of a local child.
    pub(crate) fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Whether this is a local child (spawned with
    /// [`Local::spawn`](crate::Local::spawn)): polled by its scope's own
    /// future, on the scope's task, rather than a tokio task of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().name("locals").scope_local(|n, local| async move {
    ///     local.spawn_named("borrowing", std::future::pending::<Result<(), ()>>());
    ///     n.spawn_named("parallel", std::future::pending::<Result<(), ()>>());
    ///     let dump = nursery::dump();
    ///     let tasks = dump.find("locals").unwrap().tasks();
    ///     let local = tasks.iter().find(|task| task.name() == Some("borrowing")).unwrap();
    ///     let parallel = tasks.iter().find(|task| task.name() == Some("parallel")).unwrap();
    ///     assert!(local.is_local() && !parallel.is_local());
    ///     n.cancel();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The name given with [`Nursery::spawn_named`](crate::Nursery::spawn_named)
    /// or [`Nursery::spawn_blocking_named`](crate::Nursery::spawn_blocking_named).
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Where the task was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long ago the task was spawned (to a few milliseconds).
    pub fn age(&self) -> Duration {
        self.age
    }

    /// What it was doing.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// The names of the scopes it belongs to, outermost first, joined with
    /// ` > ` (`<unnamed>` for a scope without a name).
    ///
    /// A path through more than eight scopes names the four outermost and
    /// the four innermost, and counts those between:
    /// ``"`a` > `b` > `c` > `d` > ... 49992 scopes ... > `w` > `x` > `y` > `z`"``.
    /// So a path is as cheap to make and as short to print at any depth.
    pub fn scope_path(&self) -> &str {
        &self.scope_path
    }

    /// The scopes open inside this task (in a [`Dump`]; empty in leak
    /// reports).
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// Where the task waits: its await-point trace, as tokio's task dump
    /// prints it (the frames from the task's future down to each await
    /// point it is parked on, with their source lines).
    ///
    /// Empty when the task waits on nothing tokio can trace: tokio's
    /// leaf futures (timers, its channels and locks, I/O) record where
    /// they are awaited; a future outside tokio (`std::future::pending`, a
    /// `futures` channel) does not.
    ///
    /// Present in a [`dump_traced`](crate::dump_traced) and in a
    /// [`Stuck`](crate::Stuck) report when their
    /// [`AwaitPoints`] are [`Taken`](AwaitPoints::Taken), for a task of the
    /// runtime they were taken on; `None` otherwise, and for a local child
    /// (it waits inside the trace of the task its scope runs on), a
    /// blocking child and a queued one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().name("sleepy").scope(|n| async move {
    ///     let (asleep, napping) = tokio::sync::oneshot::channel();
    ///     n.spawn_named("nap", async move {
    ///         let nap = tokio::time::sleep(std::time::Duration::from_secs(3600));
    ///         let _ = asleep.send(());
    ///         nap.await;
    ///         Ok::<(), ()>(())
    ///     });
    ///     napping.await.unwrap(); // it is parked in its sleep
    ///     let dump = nursery::dump_traced().await;
    ///     let nap = &dump.find("sleepy").unwrap().tasks()[0];
    ///     match nap.trace() {
    ///         // `<tokio::time::sleep::Sleep as Future> at .../sleep.rs:..`
    ///         Some(trace) => assert!(trace.contains("Sleep")),
    ///         None => assert_ne!(dump.await_points(), nursery::AwaitPoints::Taken),
    ///     }
    ///     n.cancel();
    ///     Ok::<(), ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }

    /// The tokio task's id; `None` while queued.
    pub(crate) fn id(&self) -> Option<Id> {
        self.id
    }

    /// Gives the task its trace, if `traces` holds one for it.
    pub(crate) fn find_trace(&mut self, traces: &Traces) {
        if let Some(id) = self.id {
            self.trace = traces.get(&id).cloned();
        }
    }

    /// Its line in the text of a dump, `depth` levels below the root scope.
    fn write_line(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(
            f,
            "{}{} {} spawned at {}: {}, age {}",
            Indent(depth),
            self.kind(),
            DisplayName(self.name()),
            self.location,
            self.state,
            Age(self.age)
        )?;
        for line in self.trace_lines() {
            writeln!(f, "{}  {line}", Indent(depth + 1))?;
        }
        Ok(())
    }

    /// The lines printed under the task's own: its trace, a line saying
    /// that it has none tokio could see, or nothing when none was taken.
    pub(crate) fn trace_lines(&self) -> impl Iterator<Item = &str> {
        let lines = match self.trace() {
            Some("") => "(no await point tokio can trace: it waits on a future outside tokio)",
            Some(trace) => trace,
            None => "",
        };
        lines.lines()
    }

    /// How a line names the task: `task`, `local task` or `blocking task`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.local {
            "local task"
        } else if self.blocking {
            "blocking task"
        } else {
            "task"
        }
    }
}

impl fmt::Debug for TaskSnapshot {
    /// The task's own fields, and how many scopes are open inside it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSnapshot")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("age", &self.age)
            .field("state", &self.state)
            .field("scope_path", &self.scope_path)
            .field("id", &self.id)
            .field("local", &self.local)
            .field("blocking", &self.blocking)
            .field("trace", &self.trace)
            .field("scopes", &self.scopes.len())
            .finish()
    }
}

/// One scope, its tasks and the scopes inside it, as they were when a
/// [`Dump`] was taken. Printed, it is the indented tree of [`Dump`] from
/// this scope down (this scope at depth 0).
///
/// A tree of snapshots may be any number of scopes deep: building it,
/// printing it, searching it, cloning it and dropping it all keep their
/// place in the tree on a stack of their own rather than the call stack,
/// so none of them overflows a thread's stack. Its `Debug` form shows the
/// scope's own fields and how many tasks and scopes it holds directly,
/// not the tree below it; print it (`Display`) for the tree.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     let opened = async { while nursery::dump().find("inner").is_none() { tokio::task::yield_now().await; } };
/// #     tokio::time::timeout(std::time::Duration::from_secs(10), opened).await.expect("`inner` opens");
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// // The tree from `crawl` down, one line per scope or task.
/// println!("{crawl}");
/// assert!(crawl.to_string().starts_with("scope `crawl` opened at "));
/// // Its own fields, and how many tasks and scopes it holds directly.
/// assert!(format!("{crawl:?}").ends_with(", tasks: 3, scopes: 0 }"));
/// assert_eq!(crawl.name(), Some("crawl"));
/// println!("`crawl` was opened at {}", crawl.location());
/// assert!(crawl.age() < std::time::Duration::from_secs(60));
/// assert_eq!(crawl.state(), nursery::ScopeState::Open);
/// let names: Vec<_> = crawl.tasks().iter().map(|task| task.name()).collect();
/// assert_eq!(names, [Some("fetch"), Some("opener"), Some("waiting")]);
/// // Scopes opened by the body; those opened by a task are under that task.
/// assert!(crawl.scopes().is_empty());
/// assert_eq!(opener.scopes().len(), 1);
/// assert_eq!(crawl.find("inner").unwrap().name(), Some("inner"));
/// assert!(crawl.find("elsewhere").is_none());
/// # let _ = fetch;
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
pub struct ScopeSnapshot {
    pub(crate) name: Option<Name>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) age: Duration,
    pub(crate) state: ScopeState,
    pub(crate) tasks: Vec<TaskSnapshot>,
    pub(crate) scopes: Vec<ScopeSnapshot>,
}

impl ScopeSnapshot {
    /// The scope's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Where the scope was opened.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long ago the scope was opened (to a few milliseconds).
    pub fn age(&self) -> Duration {
        self.age
    }

    /// What the scope was doing.
    pub fn state(&self) -> ScopeState {
        self.state
    }

    /// Its own live tasks: running, queued or cancelling. The scopes open
    /// inside each are under [`TaskSnapshot::scopes`].
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }

    /// The scopes open in its body (those open inside one of its tasks are
    /// under that task).
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// The first scope named `name` in this subtree (this one included),
    /// searching depth first.
    pub fn find(&self, name: &str) -> Option<&ScopeSnapshot> {
        find(std::slice::from_ref(self), name)
    }

    /// Its line in the text of a dump, `depth` levels below the root scope.
    fn write_line(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(
            f,
            "{}scope {} opened at {}: {}, age {}",
            Indent(depth),
            DisplayName(self.name()),
            self.location,
            self.state,
            Age(self.age)
        )
    }

    /// Whether a scope is open in it or in one of its tasks.
    fn has_inner_scopes(&self) -> bool {
        !self.scopes.is_empty() || self.tasks.iter().any(|task| !task.scopes.is_empty())
    }
}

impl fmt::Debug for ScopeSnapshot {
    /// The scope's own fields, and how many tasks and scopes it holds
    /// directly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeSnapshot")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("age", &self.age)
            .field("state", &self.state)
            .field("tasks", &self.tasks.len())
            .field("scopes", &self.scopes.len())
            .finish()
    }
}

/// Every live scope and task of the process: the tree [`dump`](crate::dump()) returns.
///
/// Printed, it is an indented tree, every scope or task before what it
/// contains, one line each: name (or `<unnamed>`), where it was opened or
/// spawned, state and age. A scope opened inside a task is shown under
/// that task; one opened in a scope's body, under the scope.
///
/// Each line is indented two spaces per level of depth below its root
/// scope (a task is one level below its scope, a scope opened in a task
/// one below the task), up to 32 levels. A line deeper than that is
/// indented as the 32nd level and starts with its depth, so that the
/// text grows with the number of lines alone, however deep the tree:
///
/// ```text
/// scope `deep` opened at src/main.rs:10:5: open, age 12ms
///   task <unnamed> spawned at src/main.rs:11:9: running, age 12ms
///     scope `level-1` opened at src/main.rs:20:5: open, age 12ms
/// ...
///                                                                 scope `level-16` opened at src/main.rs:20:5: open, age 11ms
///                                                                 [depth 33] task <unnamed> spawned at src/main.rs:21:9: running, age 11ms
///                                                                 [depth 34] scope `level-17` opened at src/main.rs:20:5: open, age 11ms
/// ```
///
/// The tree may be any number of scopes deep: it is built, printed,
/// searched, cloned and dropped without a recursion (see
/// [`ScopeSnapshot`]). Its `Debug` form lists the root scopes, each with
/// its own fields only.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// nursery::Nursery::builder().name("crawl").scope(|n| async move {
///     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
///     let dump = nursery::dump();
///     assert!(!dump.is_empty());
///     assert!(dump.scopes().iter().any(|root| root.name() == Some("crawl")));
///     assert!(dump.tasks().iter().any(|task| task.name() == Some("fetch")));
///     let crawl = dump.find("crawl").unwrap();
///     assert_eq!(crawl.tasks()[0].name(), Some("fetch"));
///     let text = crawl.to_string();
///     assert!(text.starts_with("scope `crawl` opened at"));
///     assert!(text.contains("\n  task `fetch` spawned at"));
///     n.cancel();
///     Ok(())
/// }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Dump {
    pub(crate) scopes: Vec<ScopeSnapshot>,
    pub(crate) await_points: AwaitPoints,
}

impl Dump {
    /// The root scopes: those opened outside any other scope.
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// The first scope named `name`, searching each root's tree depth first.
    pub fn find(&self, name: &str) -> Option<&ScopeSnapshot> {
        find(&self.scopes, name)
    }

    /// Every task in the tree, each before the tasks of the scopes inside
    /// it.
    pub fn tasks(&self) -> Vec<&TaskSnapshot> {
        let tasks = Nodes::new(&self.scopes).filter_map(|(_, node)| match node {
            Node::Task(task) => Some(task),
            Node::Scope(_) => None,
        });
        tasks.collect()
    }

    /// Whether no scope is open.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Whether its tasks hold where they wait ([`TaskSnapshot::trace`]):
    /// [`NotAsked`](AwaitPoints::NotAsked) for a [`dump`](crate::dump()),
    /// [`Taken`](AwaitPoints::Taken) or why not for a
    /// [`dump_traced`](crate::dump_traced).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use nursery::AwaitPoints;
    ///
    /// assert_eq!(nursery::dump().await_points(), AwaitPoints::NotAsked);
    /// let traced = nursery::dump_traced().await;
    /// if traced.await_points() != AwaitPoints::Taken {
    ///     // Its text ends with why not (and how to turn them on).
    ///     let why = format!("({})\n", traced.await_points());
    ///     assert!(traced.to_string().ends_with(&why));
    /// }
    /// # }
    /// ```
    pub fn await_points(&self) -> AwaitPoints {
        self.await_points
    }

    /// Gives each task of the tree the trace `traces` holds for it.
    pub(crate) fn find_traces(&mut self, points: AwaitPoints, traces: &Traces) {
        self.await_points = points;
        tree::tasks_mut(&mut self.scopes, |task| task.find_trace(traces));
    }
}

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::*;
    use crate::snapshot::text::MAX_INDENT;

    #[test]
    fn a_scope_path_names_the_outermost_and_innermost_scopes_and_counts_the_rest() {
        let names: Vec<Name> = (0..50_000)
            .map(|i| Name::new(format!("s{i}").into()))
            .collect();
        let path = |len: usize| scope_path(len, |level| names.get(level));
        assert_eq!(path(1), "`s0`");
        assert_eq!(
            path(8),
            "`s0` > `s1` > `s2` > `s3` > `s4` > `s5` > `s6` > `s7`"
        );
        assert_eq!(
            path(9),
            "`s0` > `s1` > `s2` > `s3` > ... 1 scope ... > `s5` > `s6` > `s7` > `s8`"
        );
        assert_eq!(
            path(50_000),
            "`s0` > `s1` > `s2` > `s3` > ... 49992 scopes ... > `s49996` > `s49997` > `s49998` > `s49999`"
        );
        let unnamed = scope_path(3, |level| names.get(level).filter(|_| level == 1));
        assert_eq!(unnamed, "<unnamed> > `s1` > <unnamed>");
    }

    /// A chain `depth` scopes deep, each scope holding one task, which
    /// holds the next scope; the scopes are named `s{level}`.
    fn chain(depth: usize) -> ScopeSnapshot {
        let location = Location::caller();
        let task = |level: usize, scopes| TaskSnapshot {
            name: None,
            location,
            age: Duration::ZERO,
            state: TaskState::Running,
            scope_path: format!("path {level}"),
            id: None,
            local: false,
            blocking: false,
            scopes,
            trace: None,
        };
        let scope = |level: usize, tasks| ScopeSnapshot {
            name: Some(Name::new(format!("s{level}").into())),
            location,
            age: Duration::ZERO,
            state: ScopeState::Open,
            tasks,
            scopes: Vec::new(),
        };
        let mut inner = scope(depth - 1, Vec::new());
        for level in (0..depth - 1).rev() {
            inner = scope(level, vec![task(level, vec![inner])]);
        }
        inner
    }

    /// Runs `f` on a thread with a 2 MiB stack, like tokio's worker threads.
    fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .expect("the thread panicked")
    }

    #[test]
    fn a_deep_snapshot_is_printed_searched_cloned_and_dropped_without_recursion() {
        const DEPTH: usize = 50_000;
        on_small_stack(|| {
            let mut dump = Dump {
                scopes: vec![chain(DEPTH)],
                await_points: AwaitPoints::NotAsked,
            };
            // Giving every task its trace walks the tree without recursion.
            dump.find_traces(AwaitPoints::Taken, &Traces::new());
            let text = dump.to_string();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2 * DEPTH - 1);
            assert!(
                lines[0].starts_with("scope `s0` opened at "),
                "{}",
                lines[0]
            );
            assert!(lines[1].starts_with("  task <unnamed> spawned at "));
            let indent = " ".repeat(2 * MAX_INDENT);
            assert!(lines[MAX_INDENT].starts_with(&format!("{indent}scope `s16` ")));
            assert!(lines[MAX_INDENT + 1].starts_with(&format!("{indent}[depth 33] task ")));
            let last = format!(
                "{indent}[depth {}] scope `s{}` opened at ",
                2 * DEPTH - 2,
                DEPTH - 1
            );
            assert!(
                lines[lines.len() - 1].starts_with(&last),
                "{}",
                lines[lines.len() - 1]
            );
            assert!(text.len() < 200 * lines.len(), "{} bytes", text.len());

            let innermost = format!("s{}", DEPTH - 1);
            let found = dump.find(&innermost).expect("the innermost scope");
            assert!(found.tasks().is_empty() && found.scopes().is_empty());
            assert_eq!(dump.tasks().len(), DEPTH - 1);

            let copy = dump.clone();
            assert_eq!(copy.to_string(), text);
            assert_eq!(
                format!("{:?}", copy.scopes()[0].tasks()[0]),
                format!(
                    "TaskSnapshot {{ name: None, location: {:?}, age: 0ns, state: Running, \
                     scope_path: \"path 0\", id: None, local: false, blocking: false, trace: None, scopes: 1 }}",
                    copy.scopes()[0].location()
                )
            );
            assert!(
                format!("{copy:?}")
                    .ends_with("state: Open, tasks: 1, scopes: 0 }], await_points: Taken }")
            );
            drop(copy);
            let task = dump.scopes()[0].tasks()[0].clone();
            drop(dump);
            assert_eq!(task.scopes()[0].name(), Some("s1"));
            drop(task);
        });
    }
}
