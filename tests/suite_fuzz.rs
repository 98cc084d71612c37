//! Property test: thousands of randomly mutated suite files (the shipped
//! suites with bytes flipped, lines dropped, duplicated or swapped, and
//! values replaced by extremes of every TOML type) never make the parser
//! panic, and every error names a field, a table or a line.

use joulebench::suite::Suite;
use joulebench::util::rng::Rng;
use std::path::{Path, PathBuf};

const CASES: usize = 6_000;
const SEED: u64 = 20_261_129;

const EXTREMES: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "0",
    "-1",
    "0.0",
    "\"\"",
    "\"..\"",
    "\"x\"",
    "[]",
    "[[]]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "true",
    "1979-05-27T07:32:00Z",
];

fn suites() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("claims")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// One random mutation of `text`.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let i = pick(rng, lines.len());
    match pick(rng, 6) {
        0 => {
            // Flip one byte of a line to a random ASCII byte (control characters included).
            let mut b = lines[i].clone().into_bytes();
            if !b.is_empty() {
                let k = pick(rng, b.len());
                b[k] = (rng.next_u64() % 128) as u8;
            }
            lines[i] = String::from_utf8_lossy(&b).into_owned();
        }
        1 => {
            lines.remove(i);
        }
        2 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        3 => {
            let j = pick(rng, lines.len());
            lines.swap(i, j);
        }
        _ => {
            // Replace the value of a `key = value` line with an extreme.
            let candidates: Vec<usize> = (0..lines.len())
                .filter(|&k| lines[k].contains('=') && !lines[k].trim_start().starts_with('#'))
                .collect();
            if !candidates.is_empty() {
                let k = candidates[pick(rng, candidates.len())];
                let key = lines[k].split('=').next().unwrap_or("").trim().to_string();
                let v = if pick(rng, 8) == 0 {
                    format!("\"{}\"", "y".repeat(300 + pick(rng, 5_000)))
                } else {
                    EXTREMES[pick(rng, EXTREMES.len())].to_string()
                };
                lines[k] = format!("{key} = {v}");
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_suites_never_panic_and_every_error_names_where() {
    let base = suites();
    assert!(base.len() >= 10, "the shipped suites are the seeds");
    let mut rng = Rng::new(SEED);
    let (mut ok, mut rejected) = (0, 0);
    for case in 0..CASES {
        let (path, text) = &base[pick(&mut rng, base.len())];
        let mut t = text.clone();
        for _ in 0..1 + pick(&mut rng, 3) {
            t = mutate(&mut rng, &t);
        }
        let quick = pick(&mut rng, 2) == 0;
        let result = std::panic::catch_unwind(|| Suite::parse_with(path, &t, quick));
        match result {
            Err(_) => panic!(
                "case {case} panicked on a mutation of {}:\n{t}",
                path.display()
            ),
            Ok(Ok(s)) => {
                // An accepted suite expands to a plan.
                assert!(s.plan().is_ok(), "case {case}");
                ok += 1;
            }
            Ok(Err(e)) => {
                let m = e.to_string();
                assert!(
                    m.contains("field `") || m.contains("line ") || m.contains("in `"),
                    "case {case}: the error names no field, table or line: {m}\n--- suite ---\n{t}"
                );
                assert!(m.len() < 4_000, "case {case}: error of {} bytes", m.len());
                rejected += 1;
            }
        }
    }
    eprintln!("{CASES} mutated suites: {ok} accepted, {rejected} rejected with a located error");
    assert!(
        rejected > CASES / 10 && ok > 0,
        "{ok} accepted, {rejected} rejected"
    );
}
