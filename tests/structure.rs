//! The promises the workspace makes about its own structure, checked so that they fail
//! the day someone breaks them:
//! - the model crate's dependency tree has no async runtime, HTTP stack or kube client;
//! - no module of any crate imports, directly or through others, a module that imports
//!   it back (a parent's `mod` and `pub use` lines are structure, not imports);
//! - nothing the build, tests or benches read lives outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Crates (by name as `cargo tree` prints them) the model must never depend on.
const NOT_IN_MODEL: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "axum",
    "tower",
    "reqwest",
    "mio",
    "rustls",
    "kube-client",
    "kube-runtime",
];

#[test]
fn the_model_depends_on_no_runtime_http_or_client() {
    let out = Command::new(env!("CARGO"))
        .current_dir(ROOT)
        .args([
            "tree",
            "--offline",
            "-p",
            "podwarden-model",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains("kube-core") && names.contains("serde"),
        "the tree does not look like the model's: {names:?}"
    );
    let found: Vec<&&str> = NOT_IN_MODEL
        .iter()
        .filter(|n| names.contains(**n))
        .collect();
    assert!(
        found.is_empty(),
        "podwarden-model depends on {found:?}; the model stays pure (see `cargo tree -p podwarden-model -i <crate>`)"
    );
}

#[test]
fn no_module_imports_itself_through_others() {
    let mut report = Vec::new();
    for src in [
        "src",
        "crates/base/src",
        "crates/model/src",
        "crates/sandbox/src",
    ] {
        let crate_modules = read_crate(&Path::new(ROOT).join(src));
        let graph = import_graph(&crate_modules);
        for cycle in cycles(&graph) {
            report.push(format!("{src}: {}", cycle.join(" -> ")));
        }
    }
    assert!(report.is_empty(), "import cycles:\n{}", report.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle_and_follows_re_exports() {
    let modules: BTreeMap<String, String> = [
        ("", "pub mod a;\npub mod c;\npub use c::Thing;"),
        // A parent naming its child in code imports it.
        ("a", "pub mod b;\nfn f() { b::g() }\n"),
        // Test modules are not the module's imports.
        (
            "a::b",
            "use super::super::c::{self, C};\n#[cfg(test)]\nmod tests {\n    use crate::a::*;\n}",
        ),
        // `crate::Thing` is `c::Thing` re-exported: c itself, not the root.
        ("c", "use crate::Thing as _;\nuse crate::a;\n"),
    ]
    .into_iter()
    .map(|(m, s)| (m.to_string(), s.to_string()))
    .collect();
    let graph = import_graph(&modules);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(graph["a"], set(&["a::b"]));
    assert_eq!(graph["a::b"], set(&["c"]));
    assert_eq!(graph["c"], set(&["a"]));
    assert_eq!(graph[""], set(&[]));
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "a::b".to_string(), "c".to_string()]]
    );
}

#[test]
fn nothing_reads_files_outside_the_repository() {
    let mut found = Vec::new();
    for dir in ["src", "crates", "tests", "benches"] {
        for file in rust_files(&Path::new(ROOT).join(dir)) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            // Spelled in two pieces so that this file does not name it.
            let outside = concat!("../", "shared");
            if text.contains(outside) {
                found.push(file.display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "these files read a path outside the repository (a fresh clone does not have it): {found:?}"
    );
}

// ---- the module graph --------------------------------------------------------------

/// Module path (`""` for the crate root, `a::b`) -> source without its test modules.
fn read_crate(src: &Path) -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("under src");
        if rel == Path::new("main.rs") {
            continue; // a binary: its own crate
        }
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        modules.insert(parts.join("::"), text);
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                out.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a module: comments and the trailing `#[cfg(test)] mod` dropped.
fn code_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t == "#[cfg(test)]"
            && lines[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if !t.starts_with("//") {
            out.push(*line);
        }
    }
    out
}

/// Paths a line names: `crate::`, `super::` and `self::` paths, with `{...}` groups
/// expanded, as absolute segment lists.
fn paths_in(line: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &line[i..];
        let starts_word = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if starts_word
            && (rest.starts_with("crate::")
                || rest.starts_with("super::")
                || rest.starts_with("self::"))
        {
            let (len, relative) = take_path(rest);
            for p in expand(&relative) {
                if let Some(abs) = absolute(&p, module) {
                    out.push(abs);
                }
            }
            i += len.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// The path text starting at `s` (identifiers, `::`, balanced `{...}` groups).
fn take_path(s: &str) -> (usize, String) {
    let mut depth = 0usize;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            c if c.is_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
            ',' | ' ' | '\n' if depth > 0 => {}
            _ if depth > 0 => {}
            _ => break,
        }
        end = i + c.len_utf8();
    }
    (end, s[..end].to_string())
}

/// `a::{b, c::{d}}` -> `a::b`, `a::c::d`; `x as y` -> `x`.
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        let p = path.split(" as ").next().unwrap_or(path).trim();
        return vec![p.trim_end_matches("::").to_string()];
    };
    let prefix = &path[..open];
    let inner = path[open + 1..].trim_end().trim_end_matches('}');
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        for tail in expand(item) {
            if tail == "self" {
                out.push(prefix.trim_end_matches("::").to_string());
            } else {
                out.push(format!("{prefix}{tail}"));
            }
        }
    }
    out
}

fn absolute(path: &str, module: &[String]) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some(&"self") => {
            segs.remove(0);
            module.to_vec()
        }
        Some(&"super") => {
            let mut b = module.to_vec();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                b.pop()?;
            }
            b
        }
        _ => return None,
    };
    base.extend(segs.iter().map(|s| s.to_string()));
    Some(base)
}

fn split(m: &str) -> Vec<String> {
    if m.is_empty() {
        Vec::new()
    } else {
        m.split("::").map(str::to_string).collect()
    }
}

/// The module a path points into: its longest prefix that is a module, then through
/// `pub use` re-exports of the next name.
fn resolve(
    path: &[String],
    modules: &BTreeSet<String>,
    exports: &BTreeMap<(String, String), Vec<String>>,
    depth: usize,
) -> String {
    let mut n = path.len();
    while n > 0 && !modules.contains(&path[..n].join("::")) {
        n -= 1;
    }
    let module = path[..n].join("::");
    if depth < 8
        && let Some(name) = path.get(n)
        && let Some(target) = exports.get(&(module.clone(), name.clone()))
    {
        let mut through = target.clone();
        through.extend(path[n + 1..].iter().cloned());
        return resolve(&through, modules, exports, depth + 1);
    }
    module
}

/// `name`'s last segment when `name` is a direct child of `parent`.
fn child_of<'n>(parent: &str, name: &'n str) -> Option<&'n str> {
    let rest = if parent.is_empty() {
        name
    } else {
        name.strip_prefix(parent)?.strip_prefix("::")?
    };
    (!rest.is_empty() && !rest.contains("::")).then_some(rest)
}

fn is_structure(line: &str) -> bool {
    let t = line.trim_start();
    [
        "pub mod ",
        "mod ",
        "pub(crate) mod ",
        "pub use ",
        "pub(crate) use ",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// module -> modules it imports (not itself, not through its own `mod`/`pub use` lines).
fn import_graph(crate_modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeSet<String> = crate_modules.keys().cloned().collect();
    // (module, exported name) -> the absolute path it re-exports.
    let mut exports = BTreeMap::new();
    for (m, text) in crate_modules {
        let here = split(m);
        for line in code_lines(text).into_iter().filter(|l| {
            let t = l.trim_start();
            t.starts_with("pub use ") || t.starts_with("pub(crate) use ")
        }) {
            let body = line
                .trim_start()
                .trim_start_matches("pub(crate) use ")
                .trim_start_matches("pub use ");
            let (_, text) = take_path(body.trim_end_matches(';'));
            let text = if text.starts_with("crate::")
                || text.starts_with("super::")
                || text.starts_with("self::")
            {
                text
            } else {
                format!("self::{text}")
            };
            for p in expand(&text) {
                if let Some(abs) = absolute(&p, &here)
                    && let Some(last) = abs.last()
                {
                    exports.insert((m.clone(), last.clone()), abs.clone());
                }
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in crate_modules {
        let here = split(m);
        let edges = graph.entry(m.clone()).or_default();
        let lines = code_lines(text);
        for line in lines.iter().filter(|l| !is_structure(l)) {
            // `use child::X;` inside a module names its own child.
            let t = line.trim_start();
            let local = t.strip_prefix("use ").filter(|r| {
                !r.starts_with("crate::") && !r.starts_with("super::") && !r.starts_with("self::")
            });
            let mut paths = paths_in(line, &here);
            // A child named in code without a prefix (`child::f()`).
            for child in names.iter().filter_map(|n| child_of(m, n)) {
                let needle = format!("{child}::");
                if line.match_indices(&needle).any(|(i, _)| {
                    i == 0
                        || !line[..i]
                            .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                }) {
                    let mut abs = here.clone();
                    abs.push(child.to_string());
                    paths.push(abs);
                }
            }
            if let Some(r) = local {
                let (_, text) = take_path(r.trim_end_matches(';'));
                paths.extend(
                    expand(&format!("self::{text}"))
                        .iter()
                        .filter_map(|p| absolute(p, &here)),
                );
            }
            for p in paths {
                let target = resolve(&p, &names, &exports, 0);
                if target != *m {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges {
                let w = w.as_str();
                if !s.graph.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}
