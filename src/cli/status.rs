//! `joulebench status`: progress of a run folder, per shard for a sharded run.

use anyhow::Result;
use joulebench::analysis::Run;
use joulebench::runfolder::sharded;
use std::path::Path;

pub fn run(dir: &Path) -> Result<i32> {
    let run = Run::load(dir)?;
    if sharded::is_sharded(dir) {
        let shards = sharded::status(dir, sharded::unix_now())?;
        println!(
            "{:>5}  {:>7}  {:>5}  {:>6}  {:>8}  {:<24}  state",
            "shard", "planned", "done", "failed", "restarts", "nodes"
        );
        for s in &shards {
            println!(
                "{:>5}  {:>7}  {:>5}  {:>6}  {:>8}  {:<24}  {}",
                s.index,
                s.planned,
                s.done,
                s.failed,
                s.restarts,
                if s.nodes.is_empty() {
                    "-".into()
                } else {
                    s.nodes.join(",")
                },
                s.state
            );
        }
    }
    let planned = run.records.len() + run.missing.len();
    println!(
        "{} of {} planned trial(s) recorded in {}",
        run.records.len(),
        planned,
        dir.display()
    );
    if !run.missing.is_empty() {
        let shown: Vec<String> = run.missing.iter().take(10).map(|k| k.to_string()).collect();
        println!(
            "missing: {}{}",
            shown.join(", "),
            if run.missing.len() > 10 {
                format!(" and {} more", run.missing.len() - 10)
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}
