//! The crate's layers: every module imports only from layers below its own
//! (or within its own folder), and no modules import each other in a loop.
//! Reads src/ as text, as `../shared/tools/layers.py` does, but fails the
//! tests instead of printing, so an upward import cannot land.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up, each at the rank its imports give
/// it: 0 for a module that imports no other top-level module, else one
/// above the highest it imports. `layers_match_what_the_modules_import`
/// derives the ranks from the code and fails when this table differs, so a
/// new import that lifts a module (or a table entry set higher than the
/// code needs) cannot go unnoticed. `cli` is the binary's edge.
const LAYERS: &[(&str, u32)] = &[
    ("util", 0),
    ("config", 1),
    ("data", 1),
    ("impact", 1),
    ("gpu", 2),
    ("ops", 2),
    ("meter", 3),
    ("model", 3),
    ("measure", 4),
    ("record", 4),
    ("suite", 5),
    ("train", 5),
    ("runfolder", 6),
    ("technique", 6),
    ("console", 6),
    ("cluster", 7),
    ("analysis", 7),
    ("harness", 8),
    ("reproduce", 9),
    ("cli", 10),
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

/// Each top-level module's rank from its imports: 0 without any, else one
/// above the highest-ranked top-level module it imports.
fn derived_ranks(g: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<String, u32> {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, targets) in g {
        let Some(top) = m.first() else { continue };
        if top == "main" || top == "lib" {
            continue;
        }
        let set = imports.entry(top.clone()).or_default();
        set.extend(
            targets
                .iter()
                .filter_map(|t| t.first())
                .filter(|t| *t != top)
                .cloned(),
        );
    }
    fn rank_of(
        m: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        memo: &mut BTreeMap<String, u32>,
        depth: usize,
    ) -> u32 {
        if let Some(r) = memo.get(m) {
            return *r;
        }
        assert!(depth < 64, "module import cycle through {m}");
        let r = imports
            .get(m)
            .into_iter()
            .flatten()
            .map(|t| rank_of(t, imports, memo, depth + 1) + 1)
            .max()
            .unwrap_or(0);
        memo.insert(m.to_string(), r);
        r
    }
    let mut memo = BTreeMap::new();
    for m in imports.keys() {
        rank_of(m, &imports, &mut memo, 0);
    }
    memo
}

#[test]
fn layers_match_what_the_modules_import() {
    let derived = derived_ranks(&graph());
    let table: BTreeMap<String, u32> = LAYERS.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    let differ: Vec<String> = derived
        .iter()
        .filter(|(m, r)| table.get(*m) != Some(r))
        .map(|(m, r)| {
            format!(
                "{m}: its imports rank it {r}, LAYERS says {:?}",
                table.get(m)
            )
        })
        .chain(
            table
                .keys()
                .filter(|m| !derived.contains_key(*m))
                .map(|m| format!("{m}: in LAYERS but not under src/")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "tests/layers.rs LAYERS is out of date (also update the table in src/lib.rs and the README):\n{}",
        differ.join("\n")
    );
}

#[test]
fn derived_ranks_follow_the_highest_import() {
    let m = |s: &str| vec![s.to_string()];
    let g: BTreeMap<Module, BTreeSet<Module>> = [
        (m("util"), BTreeSet::new()),
        (m("config"), [m("util")].into()),
        (m("suite"), [m("config"), m("util")].into()),
        (m("cli"), [m("suite"), m("util")].into()),
    ]
    .into();
    let r = derived_ranks(&g);
    assert_eq!((r["util"], r["config"], r["suite"], r["cli"]), (0, 1, 2, 3));
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
