//! What a CPU draws, for the estimate meter: which CPU this is, its rated
//! power, how many hardware threads share that power, and how power follows
//! load — with a band (low, central, high) from the spread of published models.
//!
//! **Which CPU.** The `model name` of `/proc/cpuinfo` (or `[meter] cpu_model`,
//! for a VM that hides it), looked up in `data/cpu-tdp.csv`: CodeCarbon's
//! MIT-licensed table of rated TDP per package (4,900 rows), bundled. A match
//! is exact when the normalised names are equal (vendor marks, "CPU",
//! "Processor", "N-Core" and "@ x GHz" dropped), fuzzy when every word of a
//! table row, model number included, appears in the name (the longest such row
//! wins), and unknown otherwise.
//!
//! **Threads sharing the TDP.** `[meter] cpu_threads` if given; on bare metal
//! the package's `siblings` in `/proc/cpuinfo`; from an AMD name's "N-Core"
//! (× 2, the parts have two threads per core); else unknown. In a VM the
//! visible topology is the VM's, not the host's, so it is not used.
//!
//! **Models**, per hardware thread this process may run on ("vCPU"), at the
//! process's CPU utilisation u of those threads in each interval:
//! - *curve* (Teads Engineering 2021, Boavizta): package power follows load
//!   through 0.12, 0.32, 0.75 and 1.02 × TDP at 0, 10, 50 and 100% load
//!   (fitted to RAPL on bare metal), shared equally by the package's threads:
//!   W = TDP / threads × f(u). Needs TDP and threads.
//! - *linear* (Cloud Carbon Footprint, from SPECpower per microarchitecture,
//!   Apache-2.0): W = min + u × (max − min) per vCPU. The microarchitecture is
//!   recognised from the model name; unknown → every row of the table.
//!
//! Central figure: the curve where TDP and threads are known, else the linear
//! line of the recognised microarchitecture, else the linear line averaged
//! over the table. Band: the lowest and highest of the applicable models at
//! the same u (all rows' lines when the microarchitecture is unknown). A user
//! who sets `cpu_watts_per_core` chooses the flat busy-core model instead
//! (W = u × that), recorded as such, with no band.

use crate::util::units::Watts;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The bundled table (see its header for source, licence and version).
pub const TDP_CSV: &str = include_str!("../../data/cpu-tdp.csv");
/// How records and reports name the table.
pub const TDP_TABLE_NAME: &str = "joulebench cpu-tdp v1 (codecarbon 3.3.2 cpu_power.csv, MIT)";

/// The Teads/Boavizta load curve: (load, fraction of TDP).
pub const LOAD_CURVE: [(f64, f64); 4] = [(0.0, 0.12), (0.10, 0.32), (0.50, 0.75), (1.0, 1.02)];

/// DRAM watts per GB: (low, central, high) = Teads/Boavizta 0.284,
/// CodeCarbon's 3 W per 8 GB = 0.375, Cloud Carbon Footprint 0.392.
pub const DRAM_WATTS_PER_GB: (f64, f64, f64) = (0.284, 0.375, 0.392);

/// One microarchitecture's linear power line per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Linear {
    pub architecture: &'static str,
    pub min_w: f64,
    pub max_w: f64,
}

impl Linear {
    pub fn watts(&self, u: f64) -> f64 {
        self.min_w + u.clamp(0.0, 1.0) * (self.max_w - self.min_w)
    }
}

/// Cloud Carbon Footprint's per-vCPU coefficients (cloud-carbon-coefficients,
/// Apache-2.0; min/max watts per thread from SPECpower results per
/// microarchitecture), rounded to 3 decimals. Milan: the figure CCF publishes
/// for AMD EPYC 3rd Gen.
pub const CCF_LINES: &[Linear] = &[
    lin("Graviton", 0.474, 1.693),
    lin("Graviton2", 0.474, 1.693),
    lin("Ivy Bridge", 3.037, 8.249),
    lin("Sandy Bridge", 2.169, 8.575),
    lin("Haswell", 1.901, 6.013),
    lin("Broadwell", 0.713, 3.685),
    lin("Skylake", 0.645, 4.193),
    lin("Cascade Lake", 0.639, 3.967),
    lin("Coffee Lake", 1.138, 5.422),
    lin("EPYC 1st Gen", 0.823, 2.553),
    lin("EPYC 2nd Gen", 0.474, 1.693),
    lin("EPYC 3rd Gen", 0.45, 2.02),
];

const fn lin(architecture: &'static str, min_w: f64, max_w: f64) -> Linear {
    Linear {
        architecture,
        min_w,
        max_w,
    }
}

/// The package power fraction of TDP at load `u` (piecewise linear).
pub fn curve(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    for w in LOAD_CURVE.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if u <= x1 {
            return y0 + (u - x0) / (x1 - x0) * (y1 - y0);
        }
    }
    LOAD_CURVE[LOAD_CURVE.len() - 1].1
}

/// What `/proc/cpuinfo` says about this machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuInfo {
    pub model_name: Option<String>,
    /// The `hypervisor` flag: the topology seen is the VM's, not the host's.
    pub virtualised: bool,
    /// Hardware threads per package (`siblings`).
    pub threads_per_package: Option<u32>,
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    CpuInfo {
        model_name: field("model name").filter(|s| !s.is_empty()),
        virtualised: field("flags")
            .is_some_and(|f| f.split_whitespace().any(|x| x == "hypervisor")),
        threads_per_package: field("siblings")
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0),
    }
}

/// The words of a CPU name that identify it, lower case.
pub fn normalise(name: &str) -> Vec<String> {
    let mut s = name.to_lowercase();
    for mark in ["(r)", "(tm)", "®", "™"] {
        s = s.replace(mark, " ");
    }
    if let Some(at) = s.find('@') {
        s.truncate(at);
    }
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .filter(|w| !matches!(*w, "cpu" | "processor" | "apu"))
        .filter(|w| !(w.ends_with("-core") && w[..w.len() - 5].chars().all(|c| c.is_ascii_digit())))
        .map(str::to_string)
        .collect()
}

/// How a model name matched the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKind {
    Exact,
    Fuzzy,
}

/// A table row matched to this CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdpMatch {
    /// The row's name as in the table.
    pub row: String,
    pub tdp: Watts,
    pub kind: MatchKind,
}

struct Row {
    name: String,
    words: Vec<String>,
    tdp: f64,
}

fn table() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| {
        TDP_CSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .skip(1)
            .filter_map(|l| {
                let (name, tdp) = l.rsplit_once(',')?;
                let name = name.trim().trim_matches('"').to_string();
                Some(Row {
                    words: normalise(&name),
                    tdp: tdp.trim().parse().ok()?,
                    name,
                })
            })
            .collect()
    })
}

/// Rows in the bundled table.
pub fn table_len() -> usize {
    table().len()
}

/// Looks a CPU model name up in the bundled TDP table.
pub fn lookup(model: &str) -> Option<TdpMatch> {
    let words = normalise(model);
    let found = |r: &Row, kind| TdpMatch {
        row: r.name.clone(),
        tdp: Watts(r.tdp),
        kind,
    };
    if let Some(r) = table().iter().find(|r| r.words == words) {
        return Some(found(r, MatchKind::Exact));
    }
    // Fuzzy: every word of the row (one of them a model number) is in the name.
    table()
        .iter()
        .filter(|r| {
            r.words.len() >= 2
                && r.words
                    .iter()
                    .any(|w| w.chars().any(|c| c.is_ascii_digit()))
        })
        .filter(|r| r.words.iter().all(|w| words.contains(w)))
        .max_by_key(|r| (r.words.len(), r.name.len()))
        .map(|r| found(r, MatchKind::Fuzzy))
}

/// The microarchitecture line a model name belongs to, where recognised.
pub fn architecture(model: &str) -> Option<&'static Linear> {
    let w = normalise(model);
    let has = |s: &str| w.iter().any(|x| x == s);
    let line = |a: &str| CCF_LINES.iter().find(|l| l.architecture == a);
    // The model number: a word that starts with four digits ("7763", "8259cl").
    let number = w
        .iter()
        .find(|x| x.len() >= 4 && x.as_bytes()[..4].iter().all(u8::is_ascii_digit));
    if has("epyc") {
        // 7xxN, also the cloud parts 7R32, 7B12, 7R13: the last digit is the generation.
        let n = w
            .iter()
            .find(|x| x.len() == 4 && x.starts_with('7') && x.as_bytes()[3].is_ascii_digit())?
            .as_bytes();
        return match (n[0], n[3]) {
            (b'7', b'1') => line("EPYC 1st Gen"),
            (b'7', b'2') => line("EPYC 2nd Gen"),
            (b'7', b'3') => line("EPYC 3rd Gen"),
            _ => None,
        };
    }
    if has("xeon") {
        if ["platinum", "gold", "silver", "bronze"]
            .iter()
            .any(|t| has(t))
        {
            return match number?.as_bytes()[1] {
                b'1' => line("Skylake"),
                b'2' => line("Cascade Lake"),
                _ => None,
            };
        }
        let version = w.iter().find(|x| matches!(x.as_str(), "v2" | "v3" | "v4"));
        if w.iter()
            .any(|x| x.starts_with("e5-") || x.starts_with("e7-"))
        {
            return match version.map(String::as_str) {
                Some("v2") => line("Ivy Bridge"),
                Some("v3") => line("Haswell"),
                Some("v4") => line("Broadwell"),
                _ => line("Sandy Bridge"),
            };
        }
    }
    if has("neoverse-n1") || has("graviton2") {
        return line("Graviton2");
    }
    None
}

/// Where the package's thread count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadSource {
    /// `[meter] cpu_threads` or `--cpu-threads`.
    Configured,
    /// `siblings` in /proc/cpuinfo on bare metal.
    Topology,
    /// "N-Core" in the model name, two threads per core.
    ModelName,
}

/// What the estimate knows about this CPU, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// The model name used for the lookup (`None`: /proc/cpuinfo had none).
    pub model: Option<String>,
    /// Whether the model name was given in the settings rather than read.
    #[serde(default)]
    pub model_configured: bool,
    pub virtualised: bool,
    /// The table row matched, if any.
    pub tdp: Option<TdpMatch>,
    /// Hardware threads of the package that share the TDP.
    pub threads: Option<u32>,
    pub threads_source: Option<ThreadSource>,
    /// The Cloud Carbon Footprint line of the recognised microarchitecture.
    pub architecture: Option<String>,
    /// Hardware threads this process may run on (affinity and cgroup aware).
    pub vcpus: u32,
    pub table: String,
}

/// Overrides from the settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuOverrides {
    pub model: Option<String>,
    pub threads: Option<u32>,
    pub watts_per_core: Option<Watts>,
}

impl CpuProfile {
    /// The profile of `info` with the settings' overrides and `vcpus` usable threads.
    pub fn new(info: &CpuInfo, o: &CpuOverrides, vcpus: u32) -> Self {
        let model = o.model.clone().or_else(|| info.model_name.clone());
        let tdp = model.as_deref().and_then(lookup);
        let from_name = model.as_deref().and_then(|m| {
            m.split_whitespace().find_map(|x| {
                let n = x
                    .strip_suffix("-Core")
                    .or_else(|| x.strip_suffix("-core"))?;
                n.parse::<u32>().ok().filter(|&c| c > 0)
            })
        });
        let threads = match (
            o.threads,
            info.virtualised,
            info.threads_per_package,
            from_name,
        ) {
            (Some(t), ..) => Some((t, ThreadSource::Configured)),
            (None, false, Some(t), _) if o.model.is_none() => Some((t, ThreadSource::Topology)),
            (None, _, _, Some(cores)) => Some((cores * 2, ThreadSource::ModelName)),
            _ => None,
        };
        CpuProfile {
            model_configured: o.model.is_some(),
            architecture: model
                .as_deref()
                .and_then(architecture)
                .map(|l| l.architecture.to_string()),
            model,
            virtualised: info.virtualised,
            tdp,
            threads: threads.map(|t| t.0),
            threads_source: threads.map(|t| t.1),
            vcpus: vcpus.max(1),
            table: TDP_TABLE_NAME.into(),
        }
    }

    /// The rated power and how it was found, in words.
    pub fn tdp_text(&self) -> String {
        match &self.tdp {
            Some(t) => format!(
                "{} W ({} match: table row \"{}\")",
                t.tdp.0,
                match t.kind {
                    MatchKind::Exact => "exact",
                    MatchKind::Fuzzy => "fuzzy",
                },
                t.row
            ),
            None => "unknown: no table row matches this name; name the CPU with [meter] cpu_model or --cpu-model".into(),
        }
    }

    /// The package's thread count and where it came from, in words.
    pub fn threads_text(&self) -> String {
        match (self.threads, self.threads_source) {
            (Some(t), Some(s)) => format!(
                "{t} per package ({})",
                match s {
                    ThreadSource::Configured => "from the settings",
                    ThreadSource::Topology => "siblings in /proc/cpuinfo",
                    ThreadSource::ModelName => "the name's core count x 2 threads per core",
                }
            ),
            _ => "unknown (set [meter] cpu_threads or --cpu-threads to the host package's hardware threads)".into(),
        }
    }

    /// This machine's profile: /proc/cpuinfo and the threads this process may use.
    pub fn detect(o: &CpuOverrides) -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo")
            .map(|t| parse_cpuinfo(&t))
            .unwrap_or_default();
        let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        Self::new(&info, o, vcpus)
    }
}

/// Watts (low, central, high).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band3 {
    pub low: f64,
    pub central: f64,
    pub high: f64,
}

impl Band3 {
    pub fn scale(self, k: f64) -> Band3 {
        Band3 {
            low: self.low * k,
            central: self.central * k,
            high: self.high * k,
        }
    }
}

/// The power model the estimate integrates.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuModel {
    /// The user's flat W per busy core (no band: their explicit choice).
    Flat(Watts),
    /// TDP / threads × the load curve, banded by the linear lines.
    Curve {
        tdp_per_thread: f64,
        lines: Vec<Linear>,
    },
    /// Linear lines only: one (recognised microarchitecture) or all.
    Linear { lines: Vec<Linear> },
}

impl CpuModel {
    pub fn new(p: &CpuProfile, watts_per_core: Option<Watts>) -> Self {
        if let Some(w) = watts_per_core {
            return CpuModel::Flat(w);
        }
        let lines: Vec<Linear> = match p.architecture.as_deref() {
            Some(a) => CCF_LINES
                .iter()
                .filter(|l| l.architecture == a)
                .copied()
                .collect(),
            None => CCF_LINES.to_vec(),
        };
        match (&p.tdp, p.threads) {
            (Some(t), Some(n)) if n > 0 => CpuModel::Curve {
                tdp_per_thread: t.tdp.0 / n as f64,
                lines,
            },
            _ => CpuModel::Linear { lines },
        }
    }

    /// Watts of one vCPU at utilisation `u` in [0, 1].
    pub fn per_vcpu(&self, u: f64) -> Band3 {
        let u = u.clamp(0.0, 1.0);
        let lines = |ls: &[Linear]| {
            let ws: Vec<f64> = ls.iter().map(|l| l.watts(u)).collect();
            let lo = ws.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ws.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, ws.iter().sum::<f64>() / ws.len().max(1) as f64, hi)
        };
        match self {
            CpuModel::Flat(w) => {
                let x = u * w.0;
                Band3 {
                    low: x,
                    central: x,
                    high: x,
                }
            }
            CpuModel::Curve {
                tdp_per_thread,
                lines: ls,
            } => {
                let c = tdp_per_thread * curve(u);
                let (lo, _, hi) = lines(ls);
                Band3 {
                    low: c.min(lo),
                    central: c,
                    high: c.max(hi),
                }
            }
            CpuModel::Linear { lines: ls } => {
                let (lo, mid, hi) = lines(ls);
                Band3 {
                    low: lo,
                    central: mid,
                    high: hi,
                }
            }
        }
    }

    /// How the figure is made, for `DomainInfo::method` and `meters`.
    pub fn describe(&self) -> String {
        let names = |ls: &[Linear]| {
            if ls.len() == CCF_LINES.len() {
                "every microarchitecture in the table".to_string()
            } else {
                ls.iter()
                    .map(|l| l.architecture)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self {
            CpuModel::Flat(w) => format!(
                "process CPU time x {} W per busy core (set in the settings; flat model, no band)",
                w.0
            ),
            CpuModel::Curve {
                tdp_per_thread,
                lines,
            } => format!(
                "per usable thread: TDP/threads = {tdp_per_thread:.2} W x Teads/Boavizta load curve (0.12-1.02 x) at this process's CPU utilisation; band: with Cloud Carbon Footprint's linear W per vCPU ({})",
                names(lines)
            ),
            CpuModel::Linear { lines } => format!(
                "per usable thread: Cloud Carbon Footprint's linear min->max W per vCPU at this process's CPU utilisation ({}); central = their mean, band = their range",
                names(lines)
            ),
        }
    }
}
