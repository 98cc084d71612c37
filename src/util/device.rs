//! Device selection (`cpu`, `cuda:N`, or `auto`: the first GPU when this
//! build has CUDA and one is usable, else the CPU, with the reason).

use candle_core::Device;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device {0:?} is not understood: allowed are `auto`, `cpu` and `cuda:N` (N = GPU ordinal, e.g. cuda:0)"
    )]
    Parse(String),
    #[error(
        "--device {0}: this joulebench was built without CUDA support; build it with `scripts/build-cuda.sh` (cargo feature `cuda`) or use --device cpu"
    )]
    NoCudaSupport(String),
    #[error("--device {spec}: cannot open the GPU: {source}")]
    Open {
        spec: String,
        source: candle_core::Error,
    },
}

/// A parsed device request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        s.strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| DeviceError::Parse(s.to_string()))
    }
}

impl DeviceSpec {
    /// `--device auto`: cuda:0 when this build has CUDA and the GPU opens,
    /// else the CPU; with the reason, for the log and the manifest.
    pub fn auto() -> (DeviceSpec, String) {
        if !candle_core::utils::cuda_is_available() {
            return (
                DeviceSpec::Cpu,
                "auto chose cpu: this joulebench was built without CUDA (scripts/build-cuda.sh builds it with CUDA)".into(),
            );
        }
        match Device::new_cuda(0) {
            Ok(_) => (
                DeviceSpec::Cuda(0),
                "auto chose cuda:0: a CUDA build and a usable GPU".into(),
            ),
            Err(e) => (
                DeviceSpec::Cpu,
                format!("auto chose cpu: this CUDA build found no usable GPU ({e})"),
            ),
        }
    }

    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(DeviceError::NoCudaSupport(self.to_string()));
                }
                Device::new_cuda(n).map_err(|source| DeviceError::Open {
                    spec: self.to_string(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        let e = "gpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("allowed are `auto`, `cpu` and `cuda:N`"), "{e}");
        #[cfg(not(feature = "cuda"))]
        {
            let (d, why) = DeviceSpec::auto();
            assert_eq!(d, DeviceSpec::Cpu);
            assert!(why.contains("built without CUDA"), "{why}");
        }
        #[cfg(not(feature = "cuda"))]
        {
            let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(e.contains("built without CUDA"), "{e}");
        }
    }
}
