//! The crate's layers: every module imports only from layers below its own
//! (or within its own folder), and no modules import each other in a loop.
//! Reads src/ as text, as `../shared/tools/layers.py` does, but fails the
//! tests instead of printing, so an upward import cannot land.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may import from a lower
/// rank only (same-rank siblings stay apart). `cli` is the binary's edge.
const LAYERS: &[(&str, u32)] = &[
    ("util", 0),
    ("config", 1),
    ("ops", 2),
    ("data", 2),
    ("meter", 2),
    ("impact", 2),
    ("model", 3),
    ("record", 4),
    ("train", 5),
    ("technique", 6),
    ("suite", 7),
    ("console", 8),
    ("harness", 9),
    ("analysis", 10),
    ("reproduce", 11),
    ("cli", 12),
];

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under src/ (`train/mod.rs` → [train]).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code without comments and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::new();
    let mut rest = text;
    loop {
        let line = rest.find("//");
        let block = rest.find("/*");
        let string = rest.find('"');
        let first = [line, block, string].into_iter().flatten().min();
        let Some(i) = first else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        rest = if Some(i) == string {
            // Skip a string literal (escapes included) so "//" inside it is kept out.
            let mut end = 1;
            let b = tail.as_bytes();
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            &tail[(end + 1).min(tail.len())..]
        } else if Some(i) == line {
            tail.find('\n').map_or("", |n| &tail[n..])
        } else {
            tail.find("*/").map_or("", |n| &tail[n + 2..])
        };
    }
    out
}

/// Paths written after `crate::`, `joulebench::` (the binary) or `super::`.
fn references(module: &Module, text: &str) -> Vec<Module> {
    let mut refs = Vec::new();
    for (prefix, base) in [
        ("crate::", None),
        ("joulebench::", None),
        ("super::", Some(())),
    ] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let path: Vec<String> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let mut full = match base {
                None => Vec::new(),
                // `super` of a/b.rs and of a/b/mod.rs is `a`.
                Some(()) => module[..module.len().saturating_sub(1)].to_vec(),
            };
            full.extend(path);
            refs.push(full);
        }
    }
    refs
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    let resolve = |path: &Module| -> Option<Module> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| modules.contains_key(m))
    };
    let mut edges = BTreeMap::new();
    for (m, f) in &modules {
        let text = code(&std::fs::read_to_string(f).unwrap());
        let targets: BTreeSet<Module> = references(m, &text)
            .iter()
            .filter_map(resolve)
            .filter(|t| t != m && !t.is_empty())
            .collect();
        edges.insert(m.clone(), targets);
    }
    edges
}

fn rank(m: &Module) -> Option<u32> {
    let top = m.first()?;
    LAYERS.iter().find(|(n, _)| n == top).map(|(_, r)| *r)
}

#[test]
fn every_top_level_module_has_a_layer() {
    for m in graph().keys() {
        if m.is_empty() || m == &["main".to_string()] {
            continue;
        }
        assert!(
            rank(m).is_some(),
            "src/{} is in no layer of tests/layers.rs",
            m.join("/")
        );
    }
}

#[test]
fn imports_point_down() {
    let mut upward = Vec::new();
    for (m, targets) in graph() {
        let Some(r) = rank(&m) else { continue };
        for t in targets {
            let Some(rt) = rank(&t) else { continue };
            if t[0] != m[0] && rt >= r {
                upward.push(format!(
                    "{} (layer {r}) imports {} (layer {rt})",
                    m.join("::"),
                    t.join("::")
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_import_cycle() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle found.
    fn visit(
        m: &Module,
        g: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for t in g.get(m).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(t, g, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let at = stack.iter().position(|x| x == t).unwrap_or(0);
                    return Some(stack[at..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if state.get(m).copied().unwrap_or(0) == 0
            && let Some(c) = visit(m, &g, &mut state, &mut Vec::new())
        {
            let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            panic!("module import cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_a_planted_upward_import_and_ignores_comments() {
    let m: Module = vec!["record".into()];
    let text = code(
        "// crate::harness::runner in a comment\nuse crate::train::Hooks; /* crate::cli */ let s = \"crate::suite\";",
    );
    let refs = references(&m, &text);
    assert_eq!(refs, vec![vec!["train".to_string(), "Hooks".to_string()]]);
    assert!(rank(&refs[0]) > rank(&m), "train sits above record");
}
