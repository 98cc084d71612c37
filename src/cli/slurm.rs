//! `joulebench slurm`: write (and optionally submit) an sbatch array that
//! runs a suite in shards into one run folder.

use super::args::{DataArgs, MeterArgs};
use anyhow::{Context, Result};
use clap::Args;
use joulebench::cluster::slurm;
use joulebench::runfolder::sharded;
use joulebench::suite::Suite;
use std::path::PathBuf;

#[derive(Args)]
pub struct SlurmArgs {
    /// Suite file (TOML).
    suite: PathBuf,
    /// Results root; the run folder is <out>/<suite>/slurm-<UTC stamp>/ unless --run-dir.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The run folder the shards share (on a file system every node sees).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Array tasks (shards); default: one per trial, at most 16.
    #[arg(long)]
    shards: Option<u32>,
    /// At most this many tasks at once (sbatch --array=...%P).
    #[arg(long)]
    max_parallel: Option<u32>,
    #[arg(long)]
    partition: Option<String>,
    #[arg(long, default_value_t = 2)]
    cpus_per_task: u32,
    /// GPUs per task (omit on CPU-only runs).
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// Time limit per task (sbatch --time).
    #[arg(long, default_value = "01:00:00")]
    time: String,
    /// Give each task its node to itself (sbatch --exclusive); RAPL counts
    /// whole sockets, so CPU-energy runs need it.
    #[arg(long)]
    exclusive: bool,
    /// Run only these workloads (repeatable).
    #[arg(long = "workload")]
    workloads: Vec<String>,
    /// Run only these variants (repeatable).
    #[arg(long = "variant")]
    variants: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    meter: MeterArgs,
    /// Submit the script with sbatch and print the job id.
    #[arg(long)]
    submit: bool,
}

pub fn run(a: SlurmArgs) -> Result<i32> {
    a.meter.checked()?;
    let mut suite = Suite::load(&a.suite)?;
    suite.select(&a.workloads, &a.variants)?;
    let trials = suite.plan()?.trials.len();
    let options = slurm::SbatchOptions {
        job_name: suite.name.clone(),
        shards: a.shards.unwrap_or(trials.min(16) as u32),
        max_parallel: a.max_parallel,
        partition: a.partition,
        cpus_per_task: a.cpus_per_task,
        gpus_per_task: a.gpus_per_task,
        time: a.time,
        exclusive: a.exclusive,
    };
    options.check(trials)?;
    let run_dir = match a.run_dir {
        Some(d) => d,
        None => {
            let stamp = joulebench::util::timefmt::folder_stamp(std::time::SystemTime::now());
            a.out.join(&suite.name).join(format!("slurm-{stamp}"))
        }
    };
    let abs = |p: &std::path::Path| {
        std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
    };
    let run_dir = slurm::check_path(&abs(&run_dir)?)?;
    sharded::prepare(&run_dir, &suite, options.shards)?;
    let mut run_args = a.meter.to_args();
    run_args.extend(a.data.to_args());
    for w in &a.workloads {
        run_args.extend(["--workload".into(), w.into()]);
    }
    for v in &a.variants {
        run_args.extend(["--variant".into(), v.into()]);
    }
    let binary = std::env::current_exe().context("cannot find the joulebench binary")?;
    let text = slurm::script(&slurm::ScriptInputs {
        options: &options,
        suite_name: &suite.name,
        trials,
        binary: &binary,
        suite_file: &abs(&a.suite)?,
        run_dir: &run_dir,
        workdir: &std::env::current_dir()?,
        run_args: &run_args,
    });
    let path = run_dir.join(slurm::SCRIPT_FILE);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} trial(s) in {} array task(s))",
        path.display(),
        trials,
        options.shards
    );
    if a.submit {
        let id = slurm::submit(&path)?;
        println!("submitted: job {id}");
        println!("progress:  joulebench status {}", run_dir.display());
        println!("when done: joulebench report {}", run_dir.display());
    } else {
        println!("submit with: sbatch {}", path.display());
    }
    Ok(0)
}
