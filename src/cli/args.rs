//! Arguments and checks shared by several subcommands.

use anyhow::{Result, bail};
use clap::Args;
use joulebench::harness::options::RunOptions;
use joulebench::measure::MeasureSettings;
use joulebench::util::device::DeviceSpec;
use std::path::PathBuf;

/// The device and the measurement settings, shared by `run`, `slurm`,
/// `reproduce` and `meters`.
#[derive(Args, Clone)]
pub struct MeterArgs {
    /// Device to train on (and whose GPU NVML measures): auto (cuda:0 when
    /// this build has CUDA and a GPU is usable, else cpu), cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub measure: MeasureSettings,
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
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut v = Vec::new();
        if self.device != "auto" {
            v.extend(["--device".into(), self.device.clone().into()]);
        }
        v.extend(self.measure.to_args());
        v
    }

    /// The measurement settings, each value checked (a flag's message names the flag).
    pub fn checked(&self) -> Result<&MeasureSettings> {
        if let Err(e) = self.measure.check() {
            bail!("{}", e.for_flag());
        }
        Ok(&self.measure)
    }

    /// The device asked for (`auto` resolved, with the reason).
    pub fn device(&self) -> Result<(DeviceSpec, Option<String>)> {
        Ok(if self.device == "auto" {
            let (d, why) = DeviceSpec::auto();
            tracing::info!("--device {why}");
            (d, Some(why))
        } else {
            (self.device.parse()?, None)
        })
    }
}

impl DataArgs {
    /// These settings as `joulebench run` arguments.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut v = Vec::new();
        for (flag, p) in [
            ("--data-dir", &self.data_dir),
            ("--corpus-dir", &self.corpus_dir),
        ] {
            if let Some(p) = p {
                v.push(flag.into());
                v.push(p.clone().into_os_string());
            }
        }
        v
    }
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

/// The measurement and data options of `run`, `reproduce` and `meters`.
pub fn run_options(a: &MeterArgs, data: DataArgs) -> Result<RunOptions> {
    let measure = a.checked()?.clone();
    let (device, device_reason) = a.device()?;
    Ok(RunOptions {
        device,
        device_reason,
        measure,
        data_dir: data.data_dir,
        corpus_dir: data.corpus_dir,
        ..RunOptions::default()
    })
}
