//! Arguments and checks shared by several subcommands.

use anyhow::{Context, Result, bail};
use clap::Args;
use joulebench::config::MeterChoice;
use joulebench::harness::runner::RunOptions;
use joulebench::suite::METER_RANGES;
use joulebench::util::device::DeviceSpec;
use std::path::PathBuf;

/// Measurement settings shared by `run` and `meters`.
#[derive(Args, Clone)]
pub struct MeterArgs {
    /// Device to train on (and whose GPU NVML measures): auto (cuda:0 when
    /// this build has CUDA and a GPU is usable, else cpu), cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Energy meter: auto, nvml, rapl or estimate.
    #[arg(long)]
    pub meter: Option<String>,
    /// Rated watts per busy core for the CPU estimate.
    #[arg(long)]
    pub cpu_watts_per_core: Option<f64>,
    /// The CPU's model name for the estimate (where a VM hides it), e.g. "AMD EPYC 7763".
    #[arg(long)]
    pub cpu_model: Option<String>,
    /// Hardware threads of the CPU package sharing its TDP (the host's, in a VM).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cpu_threads: Option<u32>,
    /// GPUs NVML measures: run (the run's), all (every GPU of the node) or NVML indices, e.g. 0,1.
    #[arg(long, value_parser = parse_gpus)]
    pub gpus: Option<joulebench::config::GpuSelection>,
    /// NVML library to load instead of the system's (else $JOULEBENCH_NVML_LIB).
    #[arg(long)]
    pub nvml_lib: Option<PathBuf>,
    /// Idle window before each trial, seconds (0 disables the baseline).
    #[arg(long)]
    pub idle_seconds: Option<f64>,
    /// Root of the powercap tree (default /sys/class/powercap).
    #[arg(long, hide = true)]
    pub rapl_root: Option<PathBuf>,
}

/// Where the datasets are, shared by `run` and `reproduce`.
#[derive(Args, Clone, Default)]
pub struct DataArgs {
    /// Fashion-MNIST folder (overrides $JOULEBENCH_FASHION_MNIST and the suite).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Text corpus folder (overrides $JOULEBENCH_CORPUS and the suite).
    #[arg(long)]
    pub corpus_dir: Option<PathBuf>,
}

impl MeterArgs {
    /// These settings as `joulebench run` arguments (for a batch script).
    pub fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut opt = |flag: &str, val: Option<String>| {
            if let Some(x) = val {
                v.push(flag.to_string());
                v.push(x);
            }
        };
        opt(
            "--device",
            Some(self.device.clone()).filter(|d| d != "auto"),
        );
        opt("--meter", self.meter.clone());
        opt(
            "--cpu-watts-per-core",
            self.cpu_watts_per_core.map(|x| x.to_string()),
        );
        opt("--cpu-model", self.cpu_model.clone());
        opt("--cpu-threads", self.cpu_threads.map(|x| x.to_string()));
        opt("--gpus", self.gpus.as_ref().map(|g| g.to_string()));
        opt(
            "--nvml-lib",
            self.nvml_lib.as_ref().map(|p| p.display().to_string()),
        );
        opt("--idle-seconds", self.idle_seconds.map(|x| x.to_string()));
        opt(
            "--rapl-root",
            self.rapl_root.as_ref().map(|p| p.display().to_string()),
        );
        v
    }
}

impl DataArgs {
    /// These settings as `joulebench run` arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (flag, p) in [
            ("--data-dir", &self.data_dir),
            ("--corpus-dir", &self.corpus_dir),
        ] {
            if let Some(p) = p {
                v.push(flag.to_string());
                v.push(p.display().to_string());
            }
        }
        v
    }
}

fn parse_gpus(s: &str) -> Result<joulebench::config::GpuSelection, String> {
    s.parse()
}

/// Checks `--target`: a validation accuracy.
pub fn check_target(t: Option<f64>) -> Result<()> {
    if let Some(t) = t
        && !(0.0..=1.0).contains(&t)
    {
        bail!("--target {t}: a validation accuracy in [0, 1], e.g. 0.85");
    }
    Ok(())
}

fn parse_meter_choice(m: &str) -> Result<MeterChoice> {
    MeterChoice::parse(m).with_context(|| {
        format!(
            "--meter {m:?} is not known; allowed: {}",
            MeterChoice::names().join(", ")
        )
    })
}

/// The measurement and data options of `run`, `reproduce` and `meters`.
pub fn run_options(a: &MeterArgs, data: DataArgs) -> Result<RunOptions> {
    // The same range as the suite's `[meter] cpu_watts_per_core`.
    let range = &METER_RANGES[0];
    debug_assert_eq!(range.key, "cpu_watts_per_core");
    if let Some(w) = a.cpu_watts_per_core
        && !range.contains(w)
    {
        bail!("--cpu-watts-per-core {w}: {}", range.allowed);
    }
    let (device, device_reason) = if a.device == "auto" {
        let (d, why) = DeviceSpec::auto();
        tracing::info!("--device {why}");
        (d, Some(why))
    } else {
        (a.device.parse()?, None)
    };
    Ok(RunOptions {
        device,
        device_reason,
        meter: a.meter.as_deref().map(parse_meter_choice).transpose()?,
        cpu_watts_per_core: a.cpu_watts_per_core,
        idle_seconds: a.idle_seconds,
        cpu_model: a.cpu_model.clone(),
        cpu_threads: a.cpu_threads,
        gpus: a.gpus.clone(),
        nvml_lib: a.nvml_lib.clone(),
        rapl_root: a.rapl_root.clone(),
        data_dir: data.data_dir,
        corpus_dir: data.corpus_dir,
        ..RunOptions::default()
    })
}
