//! `joulebench status`: progress of a run folder, per shard for a sharded run.

use anyhow::Result;
use joulebench::analysis::Run;
use joulebench::runfolder::sharded;
use joulebench::util::table::{Col, TextTable};
use std::path::Path;

pub fn run(dir: &Path) -> Result<i32> {
    let run = Run::load(dir)?;
    if sharded::is_sharded(dir) {
        let shards = sharded::status(dir, sharded::unix_now())?;
        let mut t = TextTable::new(&[
            ("shard", Col::Right),
            ("planned", Col::Right),
            ("done", Col::Right),
            ("failed", Col::Right),
            ("restarts", Col::Right),
            ("nodes", Col::Wrap),
            ("state", Col::Wrap),
        ]);
        for s in &shards {
            t.row([
                s.index.to_string(),
                s.planned.to_string(),
                s.done.to_string(),
                s.failed.to_string(),
                s.restarts.to_string(),
                if s.nodes.is_empty() {
                    "-".into()
                } else {
                    s.nodes.join(",")
                },
                s.state.to_string(),
            ]);
        }
        print!("{}", t.render());
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
