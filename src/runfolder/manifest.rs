//! The run manifest: what ran, where, with which software and meter.

use crate::meter::MeterInfo;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub joulebench_version: String,
    pub git_commit: String,
    /// `clean`, `dirty` (uncommitted changes when built) or `unknown`.
    pub git_state: String,
    pub candle_version: String,
    pub created_at: String,
    pub command_line: Vec<String>,
    pub suite: String,
    pub suite_file: String,
    /// The `--workload`/`--variant` filters the run was started with.
    #[serde(default, skip_serializing_if = "crate::suite::Filters::is_empty")]
    pub filters: crate::suite::Filters,
    pub host: Host,
    pub device: String,
    /// How `--device auto` chose `device`, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_selection: Option<String>,
    pub meter: MeterInfo,
    /// Meters that were tried and could not be used, with the reason.
    #[serde(default)]
    pub unavailable_meters: Vec<crate::meter::Unavailable>,
    /// GPUs measured (name, temperature, clocks, power limit) at the start.
    #[serde(default)]
    pub gpus: Vec<crate::gpu::api::GpuState>,
    /// The NVIDIA driver's version, when NVML is in use.
    #[serde(default)]
    pub gpu_driver: Option<String>,
    #[serde(default)]
    pub idle_seconds: f64,
    #[serde(default)]
    pub cooldown_seconds: f64,
    #[serde(default)]
    pub impact: Option<crate::impact::ImpactSettings>,
    pub dataset_dir: String,
    /// Host, scheduler job and shard this process ran as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::record::Placement>,
    /// How the process allocator was tuned (see `alloc`); absent in older runs.
    #[serde(default)]
    pub allocator: Option<crate::util::alloc::AllocatorTuning>,
    /// The custom kernels' self-checks on this machine at the start of the
    /// run, and which were switched off (`ops::selfcheck`).
    #[serde(default)]
    pub kernel_checks: Vec<crate::ops::selfcheck::KernelCheck>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn field<'a>(text: &'a str, key: &str, sep: char) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

impl Host {
    /// Reads the host description from /proc and /etc (Linux); unknown fields say so.
    pub fn detect() -> Host {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let os_release = read("/etc/os-release");
        let memory_bytes = field(&meminfo, "MemTotal", ':')
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Host {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            cpu_model: field(&cpuinfo, "model name", ':')
                .unwrap_or("unknown")
                .to_string(),
            logical_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes,
            os: field(&os_release, "PRETTY_NAME", '=')
                .unwrap_or(std::env::consts::OS)
                .trim_matches('"')
                .to_string(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        }
    }
}

impl Manifest {
    /// Parses `manifest.json`, refusing a schema version this joulebench does not read.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match v.get("schema_version").and_then(|x| x.as_u64()) {
            Some(x) if x == crate::record::SCHEMA_VERSION as u64 => {}
            Some(x) => {
                return Err(format!(
                    "schema_version {x} is not supported by this joulebench (reads {})",
                    crate::record::SCHEMA_VERSION
                ));
            }
            None => return Err("no schema_version field".into()),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    pub fn new(
        suite: &crate::suite::Suite,
        device: &str,
        meter: MeterInfo,
        dataset_dir: &std::path::Path,
    ) -> Manifest {
        Manifest {
            schema_version: crate::record::SCHEMA_VERSION,
            joulebench_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("JOULEBENCH_GIT_SHA").into(),
            git_state: env!("JOULEBENCH_GIT_STATE").into(),
            candle_version: env!("JOULEBENCH_CANDLE_VERSION").into(),
            created_at: crate::util::timefmt::now_rfc3339(),
            command_line: std::env::args().collect(),
            suite: suite.name.clone(),
            suite_file: suite.path.display().to_string(),
            filters: suite.filters.clone(),
            host: Host::detect(),
            device: device.into(),
            device_selection: None,
            meter,
            unavailable_meters: Vec::new(),
            gpus: Vec::new(),
            gpu_driver: None,
            idle_seconds: 0.0,
            cooldown_seconds: 0.0,
            impact: None,
            dataset_dir: dataset_dir.display().to_string(),
            placement: None,
            allocator: Some(crate::util::alloc::current()),
            kernel_checks: Vec::new(),
        }
    }
}
