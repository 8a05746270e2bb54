//! Where each task waits: the await-point traces of tokio's task dumps,
//! matched to nursery's tasks through their tokio task ids.
//!
//! Task dumps exist only in a build with `RUSTFLAGS="--cfg tokio_unstable"`
//! and nursery's `taskdump` feature, on Linux (x86, x86_64, aarch64,
//! s390x); elsewhere [`take`] says [`AwaitPoints::NotBuilt`] at once.

use std::collections::HashMap;
use std::fmt;

use tokio::task::Id;

use crate::sync::StdArc;

/// Whether a [`Dump`](crate::Dump) or a [`Stuck`](crate::Stuck) report
/// holds where its tasks wait (each [`TaskSnapshot::trace`]), and if not,
/// why not.
///
/// Its `Display` is the line a dump or a report ends with when the traces
/// are missing, saying how to get them.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use nursery::AwaitPoints;
///
/// // A plain dump does not ask for them; `dump_traced` does.
/// assert_eq!(nursery::dump().await_points(), AwaitPoints::NotAsked);
/// let traced = nursery::dump_traced().await;
/// match traced.await_points() {
///     AwaitPoints::Taken => println!("each task's trace is in TaskSnapshot::trace"),
///     missing => println!("{missing}"), // e.g. how to turn them on
/// }
/// # }
/// ```
///
/// [`TaskSnapshot::trace`]: crate::TaskSnapshot::trace
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwaitPoints {
    /// Not asked for: a [`dump`](crate::dump()), which never waits.
    #[default]
    NotAsked,
    /// Taken from tokio's task dump of the runtime they were asked on: each
    /// task of that runtime holds its trace. Tasks on other runtimes, local
    /// children, blocking children and queued ones hold none.
    Taken,
    /// This build has no task dumps. Build with
    /// `RUSTFLAGS="--cfg tokio_unstable"` and nursery's `taskdump` feature,
    /// on Linux (x86, x86_64, aarch64 or s390x).
    NotBuilt,
    /// tokio's task dump did not finish within ten seconds: a worker thread
    /// is blocked (tokio waits for every worker to pause).
    TimedOut,
    /// Asked outside a tokio runtime, or on one shutting down.
    NoRuntime,
    /// The stuck scope ended, or its future was dropped, before the dump
    /// was taken: the report is the one its timer fired, without traces.
    Interrupted,
}

impl fmt::Display for AwaitPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwaitPoints::NotAsked => {
                "where tasks wait: not asked (nursery::dump_traced() takes the await points)"
            }
            AwaitPoints::Taken => "where tasks wait: under each task, from tokio's task dump",
            AwaitPoints::NotBuilt => {
                "where tasks wait: not in this build; build with \
                 RUSTFLAGS=\"--cfg tokio_unstable\" and nursery's `taskdump` feature \
                 (Linux on x86, x86_64, aarch64 or s390x) to see each task's await points"
            }
            AwaitPoints::TimedOut => {
                "where tasks wait: tokio's task dump did not finish within 10s \
                 (a worker thread is blocked)"
            }
            AwaitPoints::NoRuntime => "where tasks wait: no tokio runtime to take a task dump on",
            AwaitPoints::Interrupted => {
                "where tasks wait: the scope ended before tokio's task dump was taken"
            }
        })
    }
}

/// The traces of the tasks asked for, by id: each as tokio's task dump
/// prints it, a tree of the frames from the task's future down to each
/// await point it is parked on.
pub(crate) type Traces = HashMap<Id, StdArc<str>>;

/// How long a task dump may take before [`take`] gives up on it.
#[cfg_attr(not(nursery_taskdump), allow(dead_code))]
const DUMP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes the traces of the tasks `wanted` of the current runtime: a task
/// dump (the runtime pauses its workers and polls every task once in a
/// tracing mode), then the traces of those tasks, resolved to symbols on
/// the blocking pool, where reading debug information does not hold up a
/// worker.
#[cfg(nursery_taskdump)]
pub(crate) async fn take(wanted: Vec<Id>) -> (AwaitPoints, Traces) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return (AwaitPoints::NoRuntime, Traces::new());
    };
    let Ok(dump) = tokio::time::timeout(DUMP_WAIT, handle.dump()).await else {
        return (AwaitPoints::TimedOut, Traces::new());
    };
    let resolve = move || {
        let wanted: std::collections::HashSet<Id> = wanted.into_iter().collect();
        let tasks = dump.tasks().iter();
        let tasks = tasks.filter(|task| wanted.contains(&task.id()));
        let traces = tasks.map(|task| {
            let trace = task.trace().to_string();
            (task.id(), StdArc::from(without_runner(&trace)))
        });
        traces.collect::<Traces>()
    };
    match tokio::task::spawn_blocking(resolve).await {
        Ok(traces) => (AwaitPoints::Taken, traces),
        // Only a runtime shutting down cancels it: resolving does not panic.
        Err(_) => (AwaitPoints::NoRuntime, Traces::new()),
    }
}

/// Takes the traces of the tasks `wanted`: in a build without task dumps,
/// none, at once.
#[cfg(not(nursery_taskdump))]
pub(crate) async fn take(wanted: Vec<Id>) -> (AwaitPoints, Traces) {
    drop(wanted);
    (AwaitPoints::NotBuilt, Traces::new())
}

/// A trace as tokio prints it (a tree, one frame a line: `╼ frame at
/// file:line:col` for the root; below it, `└╼ frame ...`, or `├╼` for a
/// frame with siblings after it, behind two columns and three more for
/// each level above the frame's, `│` where that level goes on below),
/// without the frames of nursery's own task runner and its
/// `catch_unwind` at the top: the trace starts at the child's future.
/// Indented with plain spaces, where tokio's are no-break spaces.
///
/// What goes is the chain of frames at the top, each the only one at its
/// level, down to the last of them in the file of the runner's poll
/// (`task/mod.rs`); a trace of another form is kept whole.
#[cfg_attr(not(nursery_taskdump), allow(dead_code))]
fn without_runner(trace: &str) -> String {
    /// A line of the tree: its level, the columns before its connector
    /// (no-break spaces made plain), its connector and its frame.
    struct Line<'a> {
        level: usize,
        columns: Vec<char>,
        connector: &'static str,
        frame: &'a str,
    }

    /// tokio indents with no-break spaces; plain ones are read as well.
    fn parse(line: &str) -> Option<Line<'_>> {
        let column = |c: char| c == ' ' || c == '\u{a0}' || c == '│';
        let rest = line.trim_start_matches(column);
        let columns: Vec<char> = line[..line.len() - rest.len()]
            .chars()
            .map(|c| if c == '\u{a0}' { ' ' } else { c })
            .collect();
        let (level, connector, frame) = if let Some(frame) = rest.strip_prefix("└╼") {
            (columns.len() / 3 + 1, "└╼", frame)
        } else if let Some(frame) = rest.strip_prefix("├╼") {
            (columns.len() / 3 + 1, "├╼", frame)
        } else {
            (0, "╼", rest.strip_prefix('╼')?)
        };
        let shape = if level == 0 { 0 } else { 3 * level - 1 };
        if columns.len() != shape {
            return None;
        }
        let frame = frame.strip_prefix([' ', '\u{a0}'])?;
        Some(Line {
            level,
            columns,
            connector,
            frame,
        })
    }

    /// Whether a frame (`name at file:line:col`) is in the file where
    /// nursery's task runner polls a child's future: the runner's last
    /// frame is there, under whatever name the build gives it (a full
    /// path with debug information, a short one with line tables only).
    fn in_runner(frame: &str) -> bool {
        let Some((_, place)) = frame.rsplit_once(" at ") else {
            return false;
        };
        let file = place.rsplitn(3, ':').nth(2).unwrap_or(place);
        let src = file!()
            .strip_suffix("snapshot/await_points.rs")
            .unwrap_or("src/");
        file.strip_suffix("task/mod.rs")
            .is_some_and(|dir| dir.ends_with(src))
    }

    let Some(lines) = trace.lines().map(parse).collect::<Option<Vec<_>>>() else {
        return trace.to_owned();
    };
    // The lowest level after each line: a frame whose later lines are all
    // deeper has no sibling after it.
    let mut lowest_after = vec![usize::MAX; lines.len()];
    for i in (0..lines.len().saturating_sub(1)).rev() {
        lowest_after[i] = lowest_after[i + 1].min(lines[i + 1].level);
    }
    // The chain at the top, each frame alone at its level: it goes down
    // to its last frame in the runner's file.
    let mut cut = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.level != i || lowest_after[i] <= line.level {
            break;
        }
        if in_runner(line.frame) {
            cut = i + 1;
        }
    }
    let mut out = String::with_capacity(trace.len());
    for line in &lines[cut..] {
        if line.level == cut {
            out.push('╼');
        } else {
            // The two columns under the root, then those of the levels
            // below the cut.
            out.extend(&line.columns[..2]);
            out.extend(&line.columns[2 + 3 * cut..]);
            out.push_str(line.connector);
        }
        out.push(' ');
        out.push_str(line.frame);
        out.push('\n');
    }
    out
}

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::without_runner;

    #[test]
    fn the_runner_frames_at_the_top_of_a_trace_go() {
        let trace = "\
╼ <nursery::task::Child<F> as Future> at /app/nursery/src/task/mod.rs:205:22
  └╼ nursery::context at /app/nursery/src/context.rs:97:5
     └╼ std::panic at std/src/panic.rs:359:14
        └╼ __rust_try
           └╼ <core::panic::unwind_safe::AssertUnwindSafe<F> as FnOnce<()>> at core/src/panic/unwind_safe.rs:274:9
              └╼ <nursery::task::Child<F> as Future>::poll::{{closure}} at /app/nursery/src/task/mod.rs:206:53
                 └╼ app::fetch at src/main.rs:40:14
                    ├╼ <tokio::sync::notify::Notified as Future> at tokio/src/sync/notify.rs:1034:14
                    └╼ <tokio::time::sleep::Sleep as Future> at tokio/src/time/sleep.rs:457:27
";
        assert_eq!(
            without_runner(trace),
            "\
╼ app::fetch at src/main.rs:40:14
  ├╼ <tokio::sync::notify::Notified as Future> at tokio/src/sync/notify.rs:1034:14
  └╼ <tokio::time::sleep::Sleep as Future> at tokio/src/time/sleep.rs:457:27
"
        );
    }

    #[test]
    fn with_line_tables_only_the_runner_s_short_names_go_too() {
        let trace = "\
╼ enter<core::task::poll::Poll<()>> at /app/nursery/src/context.rs:97:5
  └╼ {closure#0}<app::serve::{async_fn_env#0}> at /app/nursery/src/task/mod.rs:206:13
     └╼ catch_unwind<core::panic::unwind_safe::AssertUnwindSafe<()>>
        └╼ {closure#0}<app::serve::{async_fn_env#0}> at /app/nursery/src/task/mod.rs:206:53
           └╼ {async_fn#0} at /app/src/serve.rs:77:40
              └╼ <tokio::time::sleep::Sleep as Future>
";
        assert_eq!(
            without_runner(trace),
            "╼ {async_fn#0} at /app/src/serve.rs:77:40\n  └╼ <tokio::time::sleep::Sleep as Future>\n"
        );
    }

    #[test]
    fn the_cut_stops_at_a_branch_and_other_forms_are_kept_whole() {
        // The runner's frame has a sibling: nothing goes.
        let branching = "\
╼ app::main at a.rs:1:1
  ├╼ <nursery::task::Child<F> as Future>::poll at nursery/src/task/mod.rs:206:53
  │  └╼ app::one at c.rs:1:1
  └╼ app::two at d.rs:1:1
";
        assert_eq!(without_runner(branching), branching);
        // A frame of the same name in another crate's `task/mod.rs`.
        let other_crate = "╼ x at other/src/task/mod.rs:1:1\n  └╼ app::one at c.rs:1:1\n";
        assert_eq!(without_runner(other_crate), other_crate);
        let other = "task 7 waits on something\n";
        assert_eq!(without_runner(other), other);
        let plain = "╼ app::main at a.rs:1:1\n  └╼ tokio::Sleep at b.rs:2:2\n";
        assert_eq!(without_runner(plain), plain);
    }

    #[test]
    fn branches_below_the_cut_keep_their_columns() {
        let trace = "\
╼ <nursery::task::Child<F> as Future>::poll::{{closure}} at nursery/src/task/mod.rs:206:53
  └╼ app::serve at b.rs:2:2
     └╼ tokio::time::timeout at c.rs:3:3
        ├╼ tokio::Handle::dump at d.rs:4:4
        │  └╼ tokio::oneshot::Receiver at e.rs:5:5
        └╼ tokio::Sleep at f.rs:6:6
";
        let kept = "\
╼ app::serve at b.rs:2:2
  └╼ tokio::time::timeout at c.rs:3:3
     ├╼ tokio::Handle::dump at d.rs:4:4
     │  └╼ tokio::oneshot::Receiver at e.rs:5:5
     └╼ tokio::Sleep at f.rs:6:6
";
        assert_eq!(without_runner(trace), kept);
    }

    #[test]
    fn tokio_s_no_break_spaces_are_read_and_plain_ones_written() {
        let nbsp = "╼\u{a0}x::poll at nursery/src/task/mod.rs:206:53\n\
                    \u{a0}\u{a0}└╼\u{a0}app::fetch at b.rs:2:2\n\
                    \u{a0}\u{a0}\u{a0}\u{a0}\u{a0}└╼\u{a0}tokio::Sleep at c.rs:3:3";
        assert_eq!(
            without_runner(nbsp),
            "╼ app::fetch at b.rs:2:2\n  └╼ tokio::Sleep at c.rs:3:3\n"
        );
    }
}
