//! `joulebench validate`: check a suite file and print its expanded plan.

use anyhow::Result;
use joulebench::config::{Plan, TrialSpec};
use joulebench::suite::Suite;
use joulebench::util::table::{Col, TextTable};
use std::path::Path;

pub fn run(path: &Path, quick: bool) -> Result<i32> {
    let s = Suite::load_with(path, quick)?;
    let plan = s.plan()?;
    println!(
        "suite {} ({}): {} workload(s) x {} variant(s) x {} seed(s) x {} repeat(s) = {} trials; baseline variant: {}",
        s.name,
        path.display(),
        s.workloads.len(),
        s.variants.len(),
        s.seeds.len(),
        s.repeats,
        plan.trials.len(),
        s.baseline
    );
    let p = &s.protocol;
    println!(
        "protocol: variants {} within each seed{}; warm-up {} before each workload's first trial",
        match p.order {
            joulebench::config::protocol::Order::Shuffled =>
                format!("shuffled (order seed {})", p.order_seed),
            joulebench::config::protocol::Order::Fixed => "in the listed order".into(),
        },
        p.adaptive.map_or(String::new(), |a| format!(
            "; adaptive seeds: {} to {} from seed {}, until each comparison with {} is resolved at +-{}% (the plan lists the cap)",
            a.min, a.max, a.first, s.baseline, a.margin_pct
        )),
        if p.warmup_steps == 0 {
            "off".to_string()
        } else {
            format!("{} steps", p.warmup_steps)
        }
    );
    println!("run order (steps assume the 55,000-image Fashion-MNIST training split):");
    let mut total = 0;
    let mut table = TextTable::new(&[
        ("#", Col::Right),
        ("trial", Col::Left),
        ("precision", Col::Left),
        ("epochs", Col::Right),
        ("batch", Col::Right),
        ("lr", Col::Left),
        ("optimizer", Col::Left),
        ("train cap", Col::Right),
        ("steps", Col::Right),
        ("early stopping", Col::Wrap),
    ])
    .indent(2);
    for t in plan.run_order(&s.protocol) {
        let steps = Plan::steps(t, 55_000);
        total += steps;
        table.row(row(t, steps));
    }
    print!("{}", table.render());
    println!("total optimizer steps: {total}");
    Ok(0)
}

/// One trial of the plan.
fn row(t: &TrialSpec, steps: u64) -> [String; 10] {
    let c = &t.config;
    let stops = match &c.early_stopping {
        Some(e) => format!(
            "steps at most; stops early: {}{}",
            e.patience
                .map_or(String::new(), |p| format!("patience {p} ")),
            e.target_accuracy
                .map_or(String::new(), |t| format!("target {t}"))
        ),
        None => String::new(),
    };
    [
        (t.index + 1).to_string(),
        t.key.to_string(),
        c.precision.name().to_string(),
        c.epochs.to_string(),
        format!("{}x{}", c.batch_size, c.accumulation_steps),
        format!("{:.3e}", c.optimizer.learning_rate),
        c.optimizer.kind.name().to_string(),
        c.max_train_samples.map_or("all".into(), |n| n.to_string()),
        steps.to_string(),
        stops.trim_end().to_string(),
    ]
}
