//! Peak dense throughput and rated power of known accelerators, to express
//! measured FLOP/J as a fraction of what the device could do at best.
//!
//! Sources: NVIDIA H100 Tensor Core GPU datasheet (SXM5: FP32 66.9, TF32
//! 494.7, BF16/FP16 989.4 TFLOP/s dense, 700 W); NVIDIA H200 datasheet (same
//! compute as H100 SXM, 700 W); NVIDIA A100 datasheet (SXM4: FP32 19.5, TF32
//! 156, BF16/FP16 312 TFLOP/s dense, 400 W). Dense figures (no sparsity).

use crate::config::Precision;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub device: &'static str,
    pub fp32_tflops: f64,
    pub tf32_tflops: f64,
    pub bf16_tflops: f64,
    pub tdp_watts: f64,
    pub source: &'static str,
}

pub const PEAKS: &[(&str, Peak)] = &[
    (
        "H200",
        Peak {
            device: "NVIDIA H200 SXM",
            fp32_tflops: 66.9,
            tf32_tflops: 494.7,
            bf16_tflops: 989.4,
            tdp_watts: 700.0,
            source: "NVIDIA H200 datasheet",
        },
    ),
    (
        "H100 PCIe",
        Peak {
            device: "NVIDIA H100 PCIe",
            fp32_tflops: 51.2,
            tf32_tflops: 378.0,
            bf16_tflops: 756.0,
            tdp_watts: 350.0,
            source: "NVIDIA H100 datasheet",
        },
    ),
    (
        "H100",
        Peak {
            device: "NVIDIA H100 SXM5",
            fp32_tflops: 66.9,
            tf32_tflops: 494.7,
            bf16_tflops: 989.4,
            tdp_watts: 700.0,
            source: "NVIDIA H100 datasheet",
        },
    ),
    (
        "A100",
        Peak {
            device: "NVIDIA A100 SXM4",
            fp32_tflops: 19.5,
            tf32_tflops: 156.0,
            bf16_tflops: 312.0,
            tdp_watts: 400.0,
            source: "NVIDIA A100 datasheet",
        },
    ),
];

/// The peak entry for a device name as NVML reports it (first match wins).
pub fn lookup(name: &str) -> Option<&'static Peak> {
    PEAKS.iter().find(|(k, _)| name.contains(k)).map(|(_, p)| p)
}

impl Peak {
    /// Peak FLOP per joule at rated power for a precision.
    pub fn flop_per_joule(&self, p: Precision) -> f64 {
        let tflops = match p {
            Precision::F32 => self.fp32_tflops,
            Precision::Tf32 => self.tf32_tflops,
            Precision::Bf16 | Precision::F16 | Precision::Bf16Pure => self.bf16_tflops,
        };
        tflops * 1e12 / self.tdp_watts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h100_bf16_peak_per_joule() {
        let p = lookup("NVIDIA H100 80GB HBM3").unwrap();
        assert!((p.flop_per_joule(Precision::Bf16) / 1e12 - 1.4134).abs() < 1e-3);
        assert_eq!(lookup("NVIDIA H100 PCIe").unwrap().tdp_watts, 350.0);
        assert!(lookup("AMD EPYC").is_none());
    }
}
