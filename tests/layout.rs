//! The layout keeps its promises: no module imports a module that imports it back (directly or round a
//! longer circle), and no module's code is over ~450 lines, so each can be read in one sitting.
//!
//! The graph is read from the sources: every `crate::a::b` and `super::a` path outside comments is an
//! edge from the file's module to the module it names. Edges between siblings count (e.g. `conn::answer`
//! → `conn::state`), as do edges between top-level modules (e.g. `conn` → `http`); a module's use of its
//! own parent or children does not (a parent is made of its children).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a module's code may be, in lines, not counting its `#[cfg(test)] mod tests` block.
const MAX_MODULE_LINES: usize = 450;

type Module = Vec<String>;

/// Every module file under `src/` (the library's), with its module path; unit-test files are left out.
fn modules(root: &Path) -> Vec<(Module, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(root).expect("under src");
            let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.first().is_some_and(|p| p == "bin") || parts.iter().any(|p| p == "tests") {
                continue; // binaries are not modules of the library; unit tests are not part of the layout
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Some(last) = parts.last() else { continue };
            let Some(stem) = last.strip_suffix(".rs") else { continue };
            if parts.len() == 1 && matches!(stem, "lib" | "main") {
                continue;
            }
            let mut module: Module = parts[..parts.len() - 1].to_vec();
            if stem != "mod" {
                module.push(stem.to_string());
            }
            out.push((module, path));
        }
    }
    out
}

/// The code of a file without comments and without its unit tests.
fn code_lines(text: &str) -> Vec<&str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end].lines().filter(|l| !l.trim_start().starts_with("//")).collect()
}

/// The module paths named in `line` from `module`: `crate::a::b…` and `super::a…`.
fn named_paths(module: &Module, line: &str) -> Vec<Module> {
    let mut out = Vec::new();
    for (prefix, base) in
        [("crate::", Vec::new()), ("super::", module[..module.len().saturating_sub(1)].to_vec())]
    {
        for (at, _) in line.match_indices(prefix) {
            let before = line[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `mio_sse::crate::` or the like: not ours
            }
            let rest = &line[at + prefix.len()..];
            let segments: Vec<String> = rest
                .split("::")
                .map(|s| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
                .take_while(|s| !s.is_empty())
                .collect();
            let mut path = base.clone();
            path.extend(segments);
            out.push(path);
        }
    }
    out
}

/// The source roots of the workspace's crates: the server, the load generator, the wire format.
fn crate_roots() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![here.join("src"), here.join("load/src"), here.join("wire/src")]
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    for root in crate_roots() {
        check_no_circle(&root);
    }
}

fn check_no_circle(root: &Path) {
    let modules = modules(root);
    let known: BTreeSet<Module> = modules.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &modules {
        let text = std::fs::read_to_string(path).expect("read module");
        for line in code_lines(&text) {
            for named in named_paths(module, line) {
                // The longest prefix that is a module: `crate::conn::Connection` names `conn`.
                let Some(target) =
                    (1..=named.len()).rev().map(|n| named[..n].to_vec()).find(|p| known.contains(p))
                else {
                    continue;
                };
                if target.starts_with(module) || module.starts_with(&target) {
                    continue; // a parent and its children
                }
                // The edge is between the two distinct modules right under the common ancestor.
                let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
                edges.entry(module[..=common].to_vec()).or_default().insert(target[..=common].to_vec());
            }
        }
    }
    if root.ends_with("src") && !root.ends_with("load/src") && !root.ends_with("wire/src") {
        assert!(
            edges.values().map(BTreeSet::len).sum::<usize>() > 20,
            "the parser found the imports: {edges:?}"
        );
    }
    // A depth-first search for a circle.
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            let circle: Vec<String> = path[at..].iter().chain([node]).map(|m| m.join("::")).collect();
            panic!("an import circle: {}", circle.join(" -> "));
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(node.clone());
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn no_module_is_over_450_lines_of_code() {
    let mut long = Vec::new();
    for (_, path) in crate_roots().iter().flat_map(|root| modules(root)) {
        let text = std::fs::read_to_string(&path).expect("read module");
        let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
        let lines = text[..end].lines().count();
        if lines > MAX_MODULE_LINES {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "over {MAX_MODULE_LINES} lines: {long:?}");
}
