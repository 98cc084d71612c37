//! The command-line interface (the `anyhow` edge).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use joulebench::analysis::Run;
use joulebench::analysis::report::write_report;
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

/// Measurement settings shared by `run` and `meters`.
#[derive(Args, Clone)]
pub struct MeterArgs {
    /// Device to train on (and whose GPU NVML measures): cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Energy meter: auto, nvml, rapl or estimate.
    #[arg(long)]
    meter: Option<String>,
    /// Rated watts per busy core for the CPU estimate.
    #[arg(long)]
    cpu_watts_per_core: Option<f64>,
    /// Idle window before each trial, seconds (0 disables the baseline).
    #[arg(long)]
    idle_seconds: Option<f64>,
    /// Root of the powercap tree (default /sys/class/powercap).
    #[arg(long, hide = true)]
    rapl_root: Option<PathBuf>,
}

/// Where the datasets are, shared by `run` and `reproduce`.
#[derive(Args, Clone, Default)]
pub struct DataArgs {
    /// Fashion-MNIST folder (overrides $JOULEBENCH_FASHION_MNIST and the suite).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Text corpus folder (overrides $JOULEBENCH_CORPUS and the suite).
    #[arg(long)]
    corpus_dir: Option<PathBuf>,
}

// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run (or resume) a suite and write its records under the results folder.
    Run {
        /// Suite file (TOML), e.g. experiments/quick.toml.
        suite: PathBuf,
        /// Results root; the run lands in <out>/<suite name>/<UTC stamp>/.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Finish an interrupted run in this run folder instead of starting a new one.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        meter: MeterArgs,
        /// Grid region for CO2e: country code or name, or cloud region (see `joulebench regions`).
        #[arg(long)]
        region: Option<String>,
        /// Power usage effectiveness (facility / IT energy).
        #[arg(long)]
        pue: Option<f64>,
        /// On-site water usage effectiveness, L/kWh.
        #[arg(long)]
        wue: Option<f64>,
        /// Off-site water intensity of electricity generation, L/kWh.
        #[arg(long)]
        water_offsite: Option<f64>,
        /// Run only these workloads (repeatable).
        #[arg(long = "workload")]
        workloads: Vec<String>,
        /// Run only these variants (repeatable).
        #[arg(long = "variant")]
        variants: Vec<String>,
        /// Do not write report.md, trials.csv and plots at the end.
        #[arg(long)]
        no_report: bool,
    },
    /// Write report.md, trials.csv and plots/ for a run folder (also a partial one).
    Report {
        run: PathBuf,
        /// Target validation accuracy for energy-to-accuracy, in [0, 1] (default: the lowest final one).
        #[arg(long)]
        target: Option<f64>,
    },
    /// Draw only the plots of a run folder.
    Plot {
        run: PathBuf,
        #[arg(long)]
        target: Option<f64>,
    },
    /// Compare run B against run A per workload x variant, with 95% CIs.
    Compare {
        run_a: PathBuf,
        run_b: PathBuf,
        /// A significant energy or time increase above this many percent is a regression.
        #[arg(long, default_value_t = 5.0)]
        energy_threshold: f64,
        /// A significant accuracy drop above this many points is a regression.
        #[arg(long, default_value_t = 1.0)]
        accuracy_threshold: f64,
        /// Exit with code 3 when a regression is flagged (for CI gates).
        #[arg(long)]
        fail_on_regression: bool,
    },
    /// Run claim suites and write reproduction.md with a verdict per claim.
    Reproduce {
        /// Claim ids to run (default: all in the claims folder).
        ids: Vec<String>,
        /// CPU-sized versions (each suite's [quick] overrides).
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "experiments/claims")]
        claims_dir: PathBuf,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        meter: MeterArgs,
    },
    /// Check a suite file and print its expanded plan.
    Validate { suite: PathBuf },
    /// List the known workloads, techniques and meters.
    List,
    /// Show which energy meters work here, why not, and a short idle reading.
    Meters {
        #[command(flatten)]
        meter: MeterArgs,
    },
    /// List the grid regions of the bundled carbon-intensity table.
    Regions,
}

fn check_target(t: Option<f64>) -> Result<()> {
    if let Some(t) = t
        && !(0.0..=1.0).contains(&t)
    {
        bail!("--target {t}: a validation accuracy in [0, 1], e.g. 0.85");
    }
    Ok(())
}

fn parse_meter_choice(m: &str) -> Result<MeterChoice> {
    suite::parse_meter(m).with_context(|| {
        format!(
            "--meter {m:?} is not known; allowed: {}",
            MeterChoice::ALL
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn run_options(a: &MeterArgs, data: DataArgs) -> Result<RunOptions> {
    if let Some(w) = a.cpu_watts_per_core
        && !(w.is_finite() && w > 0.0 && w <= 1000.0)
    {
        bail!("--cpu-watts-per-core {w}: rated watts per core must be in (0, 1000]");
    }
    Ok(RunOptions {
        device: a.device.parse()?,
        meter: a.meter.as_deref().map(parse_meter_choice).transpose()?,
        cpu_watts_per_core: a.cpu_watts_per_core,
        idle_seconds: a.idle_seconds,
        rapl_root: a.rapl_root.clone(),
        data_dir: data.data_dir,
        corpus_dir: data.corpus_dir,
        ..RunOptions::default()
    })
}

pub fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run {
            suite,
            out,
            resume,
            data,
            meter,
            region,
            pue,
            wue,
            water_offsite,
            workloads,
            variants,
            no_report,
        } => {
            let mut s = Suite::load(&suite)?;
            s.select(&workloads, &variants)?;
            let opts = RunOptions {
                results_root: out,
                resume,
                region,
                pue,
                wue_onsite: wue,
                water_offsite,
                ..run_options(&meter, data)?
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
            if !no_report && !summary.records.is_empty() {
                let run = Run::load(&summary.run_dir)?;
                let w = write_report(&run, None)?;
                println!("report: {}", w.report.display());
            }
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
        Command::Report { run, target } => {
            check_target(target)?;
            let r = Run::load(&run)?;
            let w = write_report(&r, target)?;
            println!(
                "wrote {}, {} and {} plot files under {}",
                w.report.display(),
                w.csv.display(),
                w.plots.len(),
                run.join("plots").display()
            );
            Ok(0)
        }
        Command::Plot { run, target } => {
            check_target(target)?;
            let r = Run::load(&run)?;
            let t = target.unwrap_or_else(|| joulebench::analysis::plots::default_target(&r));
            let files = joulebench::analysis::plots::draw_all(&r, &run.join("plots"), t)?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(0)
        }
        Command::Compare {
            run_a,
            run_b,
            energy_threshold,
            accuracy_threshold,
            fail_on_regression,
        } => {
            let a = Run::load(&run_a)?;
            let b = Run::load(&run_b)?;
            let rows = joulebench::analysis::compare::compare(
                &a,
                &b,
                energy_threshold,
                accuracy_threshold,
            );
            if rows.is_empty() {
                bail!(
                    "{} and {} share no workload/variant with completed trials",
                    run_a.display(),
                    run_b.display()
                );
            }
            print!("{}", joulebench::analysis::compare::table(&rows));
            let bad = rows.iter().filter(|r| !r.regression.is_empty()).count();
            if bad > 0 {
                eprintln!("{bad} regression(s) flagged");
                if fail_on_regression {
                    return Ok(3);
                }
            }
            Ok(0)
        }
        Command::Reproduce {
            ids,
            quick,
            claims_dir,
            out,
            data,
            meter,
        } => {
            let suites = joulebench::reproduce::discover(&claims_dir, &ids, quick)?;
            let opts = RunOptions {
                results_root: out.clone(),
                ..run_options(&meter, data)?
            };
            let total: usize = suites
                .iter()
                .map(|c| c.suite.plan().map_or(0, |p| p.trials.len()))
                .sum();
            let progress = joulebench::progress::Console::new(total);
            let results = joulebench::reproduce::run_all(&suites, &opts, &progress)?;
            drop(progress);
            let stamp = joulebench::timefmt::folder_stamp(std::time::SystemTime::now());
            let dir = out.join("reproduction").join(if quick {
                format!("{stamp}-quick")
            } else {
                stamp
            });
            let md = joulebench::reproduce::write(&dir, &results, quick)?;
            print!("{}", joulebench::reproduce::table(&results));
            println!("report: {}", md.display());
            Ok(0)
        }
        Command::Meters { meter } => {
            let opts = run_options(&meter, DataArgs::default())?;
            print!("{}", joulebench::meters_report::report(&opts)?);
            Ok(0)
        }
        Command::Regions => {
            println!(
                "{:<28} {:>8} {:>6}  name (source)",
                "code", "gCO2e/kWh", "year"
            );
            for r in joulebench::impact::regions()? {
                println!(
                    "{:<28} {:>8.1} {:>6}  {} ({})",
                    r.code,
                    r.g_co2e_per_kwh,
                    r.year.map_or("-".into(), |y| y.to_string()),
                    r.name,
                    r.source
                );
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
                    "  {:>3}  {:<32} {:<9} epochs {:>3}  batch {:>5}x{}  lr {:<10.3e} {:<6} train cap {:<7} {:>7} steps{}",
                    t.index + 1,
                    t.key.to_string(),
                    format!("{:?}", c.precision).to_lowercase(),
                    c.epochs,
                    c.batch_size,
                    c.accumulation_steps,
                    c.optimizer.learning_rate,
                    format!("{:?}", c.optimizer.kind).to_lowercase(),
                    c.max_train_samples.map_or("all".into(), |n| n.to_string()),
                    steps,
                    match &c.early_stopping {
                        Some(e) => format!(
                            " (at most; stops early: {}{})",
                            e.patience
                                .map_or(String::new(), |p| format!("patience {p} ")),
                            e.target_accuracy
                                .map_or(String::new(), |t| format!("target {t}"))
                        ),
                        None => String::new(),
                    }
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
                (
                    "precision",
                    "f32 | bf16 | f16 (mixed, f32 master weights; f16 with loss scaling) | bf16-pure | tf32 (CUDA)",
                ),
                (
                    "batch_sizes",
                    "variants only: one variant per batch size, named <variant>-b<size>",
                ),
                (
                    "lr_scaling",
                    "none | linear | sqrt, relative to reference_batch_size (default 128)",
                ),
                (
                    "accumulation_steps",
                    "micro-batches per optimizer step (effective batch = batch_size x this)",
                ),
                (
                    "early_stopping_patience",
                    "stop after N evaluations without improvement (with _min_delta, _metric)",
                ),
                (
                    "target_accuracy",
                    "stop at the first evaluation with validation accuracy >= this",
                ),
                (
                    "eval_every_steps",
                    "evaluate every N steps (default: once per epoch)",
                ),
                (
                    "loss_scale_init",
                    "f16 dynamic loss scale start (default 65536; _growth_interval 2000)",
                ),
            ] {
                println!("  {k:<18} {d}");
            }
            println!(
                "meters (--meter or [meter] kind; `joulebench meters` shows which work here):"
            );
            println!(
                "  auto       every real source available (NVML for the run's GPU, RAPL for CPU and DRAM), the estimate for the rest"
            );
            println!(
                "  nvml       NVIDIA GPU energy counter (or polled instant power, integrated)"
            );
            println!("  rapl       CPU package and DRAM energy counters (Linux powercap)");
            println!(
                "  estimate   process CPU time x rated W per core (default {} W) and resident memory x {} W/GB; labelled `estimated`",
                joulebench::meter::estimate::DEFAULT_WATTS_PER_CORE.0,
                joulebench::meter::estimate::DEFAULT_DRAM_WATTS_PER_GB
            );
            println!("  fake       constant power x wall time, for tests; labelled `fake`");
            Ok(0)
        }
    }
}
