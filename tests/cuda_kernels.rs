//! The CUDA kernels' self-checks on a real device (`cuda` feature; run by
//! scripts/gpu-check.sh when a GPU is lent, skipped without one): the
//! multi-tensor AdamW passes its check, and each deliberately wrong variant
//! (AdamW, bias + activation, cross-entropy) is caught by its self-check
//! and switched off, after which the same calls return candle's results.
//! tests/device_kernels.rs checks the good kernels against candle's ops.
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Var};
use joulebench::ops::selfcheck::{Kernel, check_ops, enabled, verdict};
use joulebench::train::optim::TrainOptimizer;

fn cuda() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}

#[test]
fn cuda_adamw_passes_its_check_and_a_wrong_variant_is_caught_and_switched_off() {
    let Some(dev) = cuda() else { return };
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
    let opt = TrainOptimizer::new(&cfg, vec![var(), var()]).unwrap();
    assert!(matches!(opt, TrainOptimizer::Cuda(_)));
    let bad = joulebench::train::cuda::self_check(&dev, true).unwrap();
    assert!(bad > 1e-3, "the wrong variant went unnoticed: {bad}");
    let v = verdict(Kernel::CudaAdamW, "forced fault", Ok(bad), 1e-5);
    assert!(!v.passed && !enabled(Kernel::CudaAdamW), "{v:?}");
    let opt = TrainOptimizer::new(&cfg, vec![var()]).unwrap();
    assert!(matches!(opt, TrainOptimizer::AdamW(_)));
}

/// Reruns this test binary's `child` test with the layer kernels made wrong
/// on purpose (the switch is read once per process).
#[test]
fn cuda_layer_kernels_made_wrong_are_caught_and_candle_runs_instead() {
    if cuda().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "cuda_faulty_layer_kernels_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "JOULEBENCH_FAULTY_KERNEL",
            "cuda-bias-act,cuda-cross-entropy",
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn cuda_faulty_layer_kernels_child() {
    if std::env::var("JOULEBENCH_FAULTY_KERNEL").as_deref()
        != Ok("cuda-bias-act,cuda-cross-entropy")
    {
        return;
    }
    let dev = cuda().expect("the parent saw a CUDA device");
    for c in check_ops(&dev) {
        assert!(!c.passed, "{c:?}");
        assert!(c.max_rel_error > 1e-2 || c.max_rel_error.is_nan(), "{c:?}");
        assert!(!enabled(c.kernel), "{c:?}");
        assert!(c.action.starts_with("disabled"), "{c:?}");
    }
    // Switched off, the same calls are candle's ops: in f32 they agree
    // exactly (in bf16 candle's loss is itself bf16, so within rounding).
    let err = common::layer_and_loss_against_candle(&dev, DType::F32);
    assert!(err < 1e-6, "f32: {err}");
    let err = common::layer_and_loss_against_candle(&dev, DType::BF16);
    assert!(err < 5e-2, "bf16: {err}");
}
