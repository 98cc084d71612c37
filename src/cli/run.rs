//! `joulebench run`: run (or resume) a suite, then write its report.

use super::args::{DataArgs, MeterArgs, run_options};
use anyhow::Result;
use clap::Args;
use joulebench::analysis::Run;
use joulebench::analysis::report::write_report;
use joulebench::cluster::shard;
use joulebench::harness::options::RunOptions;
use joulebench::harness::runner;
use joulebench::record::TrialStatus;
use joulebench::suite::Suite;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// Suite file (TOML), e.g. experiments/quick.toml.
    suite: PathBuf,
    /// Apply the suite's [quick] table (fewer seeds and samples) over its defaults.
    #[arg(long)]
    quick: bool,
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
    /// Run only these workloads (repeatable).
    #[arg(long = "workload")]
    workloads: Vec<String>,
    /// Run only these variants (repeatable).
    #[arg(long = "variant")]
    variants: Vec<String>,
    /// Let trials set GPU power limits and locked clocks (gpu_power_limit_w,
    /// gpu_sm_clock_mhz) through NVML; the originals are saved in the run
    /// folder and restored after every trial and on every exit path.
    #[arg(long)]
    allow_gpu_settings: bool,
    /// Do not write report.md, trials.csv and plots at the end.
    #[arg(long)]
    no_report: bool,
    /// Run only shard K of N of the plan (trial index mod N == K) into the
    /// shared --run-dir. Without it, a Slurm array task
    /// (SLURM_ARRAY_TASK_ID/COUNT) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX with JOULEBENCH_SHARDS) picks its shard.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// The run folder shards share (created by the first; a restarted shard
    /// resumes its own file). Default under Slurm: <out>/<suite>/slurm-<array job id>.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

/// This command line with `--resume RUN_DIR` (replacing any given).
fn resume_command(run_dir: &std::path::Path) -> String {
    let mut args: Vec<String> = Vec::new();
    let mut skip = false;
    for a in std::env::args() {
        if skip {
            skip = false;
            continue;
        }
        if a == "--resume" {
            skip = true;
            continue;
        }
        if a.starts_with("--resume=") {
            continue;
        }
        args.push(a);
    }
    args.push("--resume".into());
    args.push(run_dir.display().to_string());
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(a: RunArgs) -> Result<i32> {
    let mut s = Suite::load_with(&a.suite, a.quick)?;
    s.select(&a.workloads, &a.variants)?;
    let env = shard::process_env;
    let choice = shard::resolve(a.shard.as_deref(), &env)?;
    let shared = match (choice, &a.run_dir) {
        (None, None) => None,
        (choice, _) => {
            if a.resume.is_some() {
                return Err(shard::ShardError::ResumeAndShard.into());
            }
            Some(shard::SharedRun {
                shard: choice.unwrap_or(shard::ShardChoice {
                    shard: joulebench::record::Shard { index: 0, count: 1 },
                    source: "--run-dir",
                }),
                dir: shard::run_dir(a.run_dir.as_deref(), &env, &a.out, &s.name)?,
            })
        }
    };
    let opts = RunOptions {
        results_root: a.out,
        resume: a.resume,
        shared: shared.clone(),
        allow_gpu_settings: a.allow_gpu_settings,
        ..run_options(&a.meter, a.data)?
    };
    let total = s.plan()?.trials.len();
    joulebench::util::interrupt::install();
    let progress = joulebench::console::progress::Console::new(total);
    let summary = runner::run_suite(&s, &opts, &progress)?;
    drop(progress);
    if let Some(sig) = summary.interrupted {
        println!("{}", joulebench::console::summary::table(&summary.records));
        if let Some(sr) = &shared {
            eprintln!(
                "interrupted by {}: shard {} holds {} trial(s) in {}; the trial in flight was not recorded.\nrun the same command again (or requeue the job) to finish the shard",
                joulebench::util::interrupt::name(sig),
                sr.shard.shard,
                summary.records.len(),
                summary.run_dir.display()
            );
            return Ok(128 + sig);
        }
        eprintln!(
            "interrupted by {}: {} trial(s) recorded in {}; the trial in flight was not recorded.\nresume with: {}",
            joulebench::util::interrupt::name(sig),
            summary.records.len(),
            summary.run_dir.display(),
            resume_command(&summary.run_dir)
        );
        return Ok(128 + sig);
    }
    println!("{}", joulebench::console::summary::table(&summary.records));
    println!(
        "{} trial(s) run, {} already present; records in {}",
        summary.ran,
        summary.skipped,
        summary.trials_path.display()
    );
    if let Some(sr) = &shared {
        println!(
            "shard {} ({}) done; when every shard has ended: joulebench status {} ; joulebench report {}",
            sr.shard.shard,
            sr.shard.source,
            summary.run_dir.display(),
            summary.run_dir.display()
        );
    } else if !a.no_report && !summary.records.is_empty() {
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
