//! The text of snapshots: one line per task or scope, indented by depth
//! up to a bound; scope paths; names and ages as reports print them.

use std::fmt;
use std::time::Duration;

use crate::id::Name;
use crate::snapshot::tree::{Node, Nodes};
use crate::snapshot::{AwaitPoints, Dump, ScopeSnapshot, TaskSnapshot};

impl fmt::Display for TaskSnapshot {
    /// One line: name, spawn location, scope path, state and age.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} spawned at {}, in scope {}: {}, age {}",
            self.kind(),
            DisplayName(self.name()),
            self.location,
            self.scope_path,
            self.state,
            Age(self.age)
        )
    }
}

impl fmt::Display for ScopeSnapshot {
    /// The tree from this scope down, as [`Dump`] prints it, with this
    /// scope at depth 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_tree(f, std::slice::from_ref(self))
    }
}

impl fmt::Display for Dump {
    /// The indented tree, one line per scope or task (see [`Dump`] for the
    /// lines deeper than 32 levels), each task's trace under it when it
    /// has one; `no open scopes` if there is none. A dump that asked for
    /// traces and has none ends with a line saying why
    /// ([`AwaitPoints`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scopes.is_empty() {
            writeln!(f, "no open scopes")?;
        } else {
            write_tree(f, &self.scopes)?;
        }
        match self.await_points {
            AwaitPoints::NotAsked | AwaitPoints::Taken => Ok(()),
            missing => writeln!(f, "({missing})"),
        }
    }
}

/// The text of the trees from `roots` down: one line per scope or task.
fn write_tree(f: &mut fmt::Formatter<'_>, roots: &[ScopeSnapshot]) -> fmt::Result {
    for (depth, node) in Nodes::new(roots) {
        match node {
            Node::Scope(scope) => scope.write_line(f, depth)?,
            Node::Task(task) => task.write_line(f, depth)?,
        }
    }
    Ok(())
}

/// Depths shown by indentation alone in the text of a dump.
pub(super) const MAX_INDENT: usize = 32;

/// Two spaces for each level of depth up to [`MAX_INDENT`].
const INDENT: &str = "                                                                ";
const _: () = assert!(INDENT.len() == 2 * MAX_INDENT);

/// The start of a line of a dump's text at `depth`: two spaces per level,
/// up to [`MAX_INDENT`] levels; a deeper line is indented as that level
/// and names its depth, as in `[depth 4812] `. So a line's length does not
/// grow with its depth, and a dump's text with the number of its lines.
pub(super) struct Indent(pub(super) usize);

impl fmt::Display for Indent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&INDENT[..2 * self.0.min(MAX_INDENT)])?;
        if self.0 > MAX_INDENT {
            write!(f, "[depth {}] ", self.0)?;
        }
        Ok(())
    }
}

/// How many of the outermost scopes a path names before it elides, and
/// how many of the innermost after.
pub(crate) const PATH_HEAD: usize = 4;
pub(crate) const PATH_TAIL: usize = 4;

/// The path of a scope `len` levels deep (itself the last): the names of
/// the scopes from the outermost down, joined with ` > `. Past
/// `PATH_HEAD + PATH_TAIL` scopes, the ones between the first
/// `PATH_HEAD` and the last `PATH_TAIL` are counted rather than named:
/// ``"`a` > `b` > `c` > `d` > ... 49992 scopes ... > `w` > `x` > `y` > `z`"``.
///
/// `name(level)` is the name of the scope `level` levels below the
/// outermost; it is asked only for the names kept, so a path takes the
/// same time and room at any depth.
pub(crate) fn scope_path<'a>(len: usize, name: impl Fn(usize) -> Option<&'a Name>) -> String {
    use std::fmt::Write as _;

    let mut path = String::new();
    let mut push = |part: &dyn fmt::Display| {
        if !path.is_empty() {
            path.push_str(" > ");
        }
        let _ = write!(path, "{part}");
    };
    let name = |level| DisplayName(name(level).map(Name::as_str));
    let elided = len.saturating_sub(PATH_HEAD + PATH_TAIL);
    if elided == 0 {
        (0..len).for_each(|level| push(&name(level)));
    } else {
        (0..PATH_HEAD).for_each(|level| push(&name(level)));
        let plural = if elided == 1 { "" } else { "s" };
        push(&format_args!("... {elided} scope{plural} ..."));
        (len - PATH_TAIL..len).for_each(|level| push(&name(level)));
    }
    path
}

/// A name in backquotes, or `<unnamed>`.
pub(crate) struct DisplayName<'a>(pub(crate) Option<&'a str>);

impl fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "`{name}`"),
            None => f.write_str("<unnamed>"),
        }
    }
}

/// A duration rounded for people: `850ms`, `12.3s`, `4m05s`.
pub(crate) struct Age(pub(crate) Duration);

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1_000 {
            write!(f, "{millis}ms")
        } else if millis < 60_000 {
            write!(f, "{:.1}s", self.0.as_secs_f64())
        } else {
            let secs = self.0.as_secs();
            write!(f, "{}m{:02}s", secs / 60, secs % 60)
        }
    }
}
