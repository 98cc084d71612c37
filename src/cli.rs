//! The command-line interface (the `anyhow` edge).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use joulebench::device::DeviceSpec;
use joulebench::model::ModelKind;
use joulebench::plan::Plan;
use joulebench::record::TrialStatus;
use joulebench::runner::{self, RunOptions};
use joulebench::suite::{self, MeterChoice, Suite};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "joulebench",
    version,
    about = "Measure the energy cost of ML optimization techniques"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run (or resume) a suite and write its records under the results folder.
    Run {
        /// Suite file (TOML), e.g. experiments/quick.toml.
        suite: PathBuf,
        /// Results root; the run lands in <out>/<suite name>/<UTC stamp>/.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Device to train on: cpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Finish an interrupted run in this run folder instead of starting a new one.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Fashion-MNIST folder (overrides $JOULEBENCH_FASHION_MNIST and the suite).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Energy meter: estimate (fake is for tests).
        #[arg(long)]
        meter: Option<String>,
        /// Rated watts per busy core for the estimate meter.
        #[arg(long)]
        cpu_watts_per_core: Option<f64>,
        /// Run only these workloads (repeatable).
        #[arg(long = "workload")]
        workloads: Vec<String>,
        /// Run only these variants (repeatable).
        #[arg(long = "variant")]
        variants: Vec<String>,
    },
    /// Check a suite file and print its expanded plan.
    Validate { suite: PathBuf },
    /// List the known workloads, techniques and meters.
    List,
}

pub fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run {
            suite,
            out,
            device,
            resume,
            data_dir,
            meter,
            cpu_watts_per_core,
            workloads,
            variants,
        } => {
            let mut s = Suite::load(&suite)?;
            s.select(&workloads, &variants)?;
            let device: DeviceSpec = device.parse()?;
            let meter = match meter {
                None => None,
                Some(m) => Some(suite::parse_meter(&m).with_context(|| {
                    format!(
                        "--meter {m:?} is not known; allowed: {}",
                        MeterChoice::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?),
            };
            if let Some(w) = cpu_watts_per_core
                && !(w.is_finite() && w > 0.0 && w <= 1000.0)
            {
                bail!("--cpu-watts-per-core {w}: rated watts per core must be in (0, 1000]");
            }
            let opts = RunOptions {
                results_root: out,
                device,
                data_dir,
                resume,
                meter,
                cpu_watts_per_core,
            };
            let total = s.plan()?.trials.len();
            let progress = joulebench::progress::Console::new(total);
            let summary = runner::run_suite(&s, &opts, &progress)?;
            drop(progress);
            println!("{}", joulebench::summary::table(&summary.records));
            println!(
                "{} trial(s) run, {} already present; records in {}",
                summary.ran,
                summary.skipped,
                summary
                    .run_dir
                    .join(joulebench::store::TRIALS_FILE)
                    .display()
            );
            let failed = summary
                .records
                .iter()
                .filter(|r| matches!(r.status, TrialStatus::Failed { .. }))
                .count();
            if failed > 0 {
                eprintln!("error: {failed} trial(s) failed; their records say why");
                return Ok(2);
            }
            Ok(0)
        }
        Command::Validate { suite } => {
            let s = Suite::load(&suite)?;
            let plan = s.plan()?;
            println!(
                "suite {} ({}): {} workload(s) x {} variant(s) x {} seed(s) x {} repeat(s) = {} trials; baseline variant: {}",
                s.name,
                suite.display(),
                s.workloads.len(),
                s.variants.len(),
                s.seeds.len(),
                s.repeats,
                plan.trials.len(),
                s.baseline
            );
            println!("order (steps assume the 55,000-image Fashion-MNIST training split):");
            let mut total = 0;
            for t in &plan.trials {
                let steps = Plan::steps(t, 55_000);
                total += steps;
                let c = &t.config;
                println!(
                    "  {:>3}  {:<32} epochs {:>3}  batch {:>5}  lr {:<8} {:<6} train cap {:<7} {:>7} steps",
                    t.index + 1,
                    t.key.to_string(),
                    c.epochs,
                    c.batch_size,
                    c.optimizer.learning_rate,
                    format!("{:?}", c.optimizer.kind).to_lowercase(),
                    c.max_train_samples.map_or("all".into(), |n| n.to_string()),
                    steps
                );
            }
            println!("total optimizer steps: {total}");
            Ok(0)
        }
        Command::List => {
            println!("workloads (models a [[workload]] can name with `model = ...`):");
            for (name, kind) in ModelKind::ALL {
                println!("  {name:<10} {}", kind.describe());
            }
            println!("techniques (settings of [defaults], [[workload]] or [[variant]]):");
            for (k, d) in [
                ("epochs", "training epochs (>= 1)"),
                ("batch_size", "training batch size (>= 1)"),
                ("learning_rate", "in (0, 10]"),
                ("optimizer", "adamw | sgd (momentum)"),
                ("momentum", "SGD momentum in [0, 1)"),
                ("weight_decay", ">= 0 (decoupled for AdamW, L2 for SGD)"),
                ("max_train_samples", "cap on training samples (quick runs)"),
                ("max_eval_samples", "cap on validation/test samples"),
                ("eval_batch_size", "batch size of evaluation and inference"),
            ] {
                println!("  {k:<18} {d}");
            }
            println!("meters (--meter or [meter] kind):");
            println!(
                "  estimate   process CPU time x rated W per core (default {} W); labelled `estimated`",
                joulebench::meter::estimate::DEFAULT_WATTS_PER_CORE.0
            );
            println!("  fake       constant power x wall time, for tests; labelled `fake`");
            Ok(0)
        }
    }
}
