//! The CUDA kernels' self-checks on a real device (`cuda` feature; run by
//! scripts/gpu-check.sh when a GPU is lent): the fused AdamW matches
//! candle_nn's, a deliberately wrong variant is caught, and once caught the
//! trainer falls back to candle_nn's AdamW.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Var};
use joulebench::ops::selfcheck::{Kernel, enabled, verdict};
use joulebench::train::optim::TrainOptimizer;

#[test]
fn cuda_adamw_passes_its_check_and_a_wrong_variant_is_caught_and_switched_off() {
    let dev = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            return;
        }
    };
    let good = joulebench::train::cuda::self_check(&dev, false).unwrap();
    assert!(
        good < 1e-5,
        "the fused AdamW differs from candle_nn's by {good}"
    );
    let cfg = joulebench::config::OptimizerConfig {
        kind: joulebench::config::OptimizerKind::Adamw,
        learning_rate: 1e-3,
        momentum: 0.0,
        weight_decay: 0.01,
        fused: true,
    };
    let var = || Var::zeros(10, DType::F32, &dev).unwrap();
    let opt = TrainOptimizer::new(&cfg, vec![var()]).unwrap();
    assert!(matches!(opt, TrainOptimizer::Cuda(_)));
    let bad = joulebench::train::cuda::self_check(&dev, true).unwrap();
    assert!(bad > 1e-3, "the wrong variant went unnoticed: {bad}");
    let v = verdict(Kernel::CudaAdamW, "forced fault", Ok(bad), 1e-5);
    assert!(!v.passed && !enabled(Kernel::CudaAdamW), "{v:?}");
    let opt = TrainOptimizer::new(&cfg, vec![var()]).unwrap();
    assert!(matches!(opt, TrainOptimizer::AdamW(_)));
}
