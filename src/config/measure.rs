//! Measurement settings: which meter, as chosen in a suite or on the
//! command line.

crate::named_enum! {
    /// Meter selection as written in a suite or on the command line.
    pub enum MeterChoice: "meter" {
        /// Every real source available (NVML, RAPL), the estimate for the rest.
        Auto = "auto",
        /// NVIDIA GPUs through NVML only.
        Nvml = "nvml",
        /// CPU packages and DRAM through Linux RAPL (powercap) only.
        Rapl = "rapl",
        /// Labelled estimate from process CPU time × rated watts per core.
        Estimate = "estimate",
        /// Deterministic scripted meter (tests and demos; every value labelled `fake`).
        Fake = "fake",
    }
}

/// Which GPUs the NVML meter measures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GpuSelection {
    /// The GPUs the run trains on (`--device cuda:N`, through `CUDA_VISIBLE_DEVICES`).
    #[default]
    Run,
    /// Every GPU of the node, whatever the run uses (idle GPUs draw power too).
    All,
    /// These NVML indices (physical order, as `nvidia-smi` lists them).
    Indices(Vec<u32>),
}

impl GpuSelection {
    pub const ALLOWED: &'static str = "\"run\" (the run's GPUs), \"all\" (every GPU of the node) or a list of NVML indices, e.g. [0, 1]";
}

impl std::fmt::Display for GpuSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuSelection::Run => f.write_str("run"),
            GpuSelection::All => f.write_str("all"),
            GpuSelection::Indices(v) => {
                let s: Vec<String> = v.iter().map(u32::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

impl std::str::FromStr for GpuSelection {
    type Err = String;
    /// `run`, `all`, or a comma-separated list of indices (`0,1`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "run" => Ok(GpuSelection::Run),
            "all" => Ok(GpuSelection::All),
            list => {
                let mut out: Vec<u32> = Vec::new();
                for x in list.split(',') {
                    let i: u32 = x
                        .trim()
                        .parse()
                        .map_err(|_| format!("{s:?} is not {}", GpuSelection::ALLOWED))?;
                    if out.contains(&i) {
                        return Err(format!("{s:?} names GPU {i} twice"));
                    }
                    out.push(i);
                }
                Ok(GpuSelection::Indices(out))
            }
        }
    }
}

impl serde::Serialize for GpuSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GpuSelection::Indices(v) => v.serialize(s),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for GpuSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            List(Vec<i64>),
        }
        match Raw::deserialize(d)? {
            Raw::Name(n) if n == "run" || n == "all" => n.parse().map_err(serde::de::Error::custom),
            Raw::Name(n) => Err(serde::de::Error::custom(format!(
                "{n:?} is not {}",
                GpuSelection::ALLOWED
            ))),
            Raw::List(v) => {
                let s: Vec<String> = v.iter().map(i64::to_string).collect();
                if v.is_empty() || v.iter().any(|&i| !(0..=1023).contains(&i)) {
                    return Err(serde::de::Error::custom(format!(
                        "[{}] is not {} (indices 0..=1023, at least one)",
                        s.join(", "),
                        GpuSelection::ALLOWED
                    )));
                }
                s.join(",").parse().map_err(serde::de::Error::custom)
            }
        }
    }
}
