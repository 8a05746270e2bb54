//! The library's modules form layers: a module imports only from modules
//! in its own layer or the layers below, and never in a cycle. This test
//! reads `nursery/src` and fails on an upward `crate::…` path or a cycle,
//! naming the modules and the file. `docs/architecture.md` draws the same
//! layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `nursery/src`, lowest layer first.
const LAYERS: &[(&str, &[&str])] = &[
    ("primitives", &["sync", "clock", "timer"]),
    ("task identity", &["id"]),
    ("the loom-modelled core", &["core"]),
    (
        "public value types",
        &["cause", "error", "stats", "snapshot", "leak", "stuck"],
    ),
    ("scope state, registry, tree", &["scope"]),
    ("the current scope", &["context", "shield"]),
    ("the child", &["local", "observe", "task"]),
    ("diagnostics", &["dump"]),
    ("the scope's API", &["nursery", "builder", "run", "glue"]),
    (
        "built on scopes",
        &["bulk", "pipeline", "policy", "testing"],
    ),
    ("white-box tests", &["tests"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nursery/src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("nursery/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`scope/tree.rs` → `scope`);
/// `None` for `lib.rs`, which only wires the modules together.
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).expect("under nursery/src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(first.to_owned()),
    }
}

/// The crate-level names a file's code refers to (`crate::scope::Scope`
/// and `crate::{scope, task::Slot}` alike), comments and doc links left
/// out.
fn referenced(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                names.insert(ident(item.trim()));
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names
}

/// Imports between top-level modules: module → (module it imports → the
/// files that do).
fn imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeSet<String> = all.iter().filter_map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &all {
        let Some(from) = module_of(file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let shown = file.strip_prefix(src()).unwrap().display().to_string();
        let entry = edges.entry(from.clone()).or_default();
        for to in referenced(&text) {
            if to != from && modules.contains(&to) {
                entry.entry(to).or_default().insert(shown.clone());
            }
        }
    }
    edges
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = imports()
        .into_keys()
        .filter(|module| layer_of(module).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS here and to docs/architecture.md): {unplaced:?}"
    );
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let mut upward = Vec::new();
    for (from, targets) in imports() {
        let Some(from_layer) = layer_of(&from) else {
            continue;
        };
        for (to, files) in targets {
            let Some(to_layer) = layer_of(&to) else {
                continue;
            };
            if to_layer > from_layer {
                upward.push(format!(
                    "`{from}` ({}) imports `{to}` ({}) in {files:?}",
                    LAYERS[from_layer].0, LAYERS[to_layer].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn no_modules_import_each_other_in_a_cycle() {
    let edges = imports();
    // Depth-first search with an explicit path: a module met again while
    // still on the path closes a cycle.
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flat_map(|t| t.keys()) {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        let cycle = visit(module, &edges, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "an import cycle: {}",
            cycle.unwrap().join(" → ")
        );
    }
}

#[test]
fn the_reader_sees_what_the_code_says() {
    // The parser itself: a path in a comment is not an import; a group is.
    let text = "use crate::{scope::Scope, task};\n// crate::dump\nlet x = crate::id::Name::new;";
    let names: Vec<String> = referenced(text).into_iter().collect();
    assert_eq!(names, ["id", "scope", "task"]);
}
