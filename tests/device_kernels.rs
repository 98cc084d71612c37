//! Each custom kernel against candle's reference ops on the device it runs
//! on (`test_device!`: the CPU here, and cuda:0 too under `--features cuda`,
//! run by scripts/gpu-check.sh when a GPU is lent). On the CPU these are the
//! fused linear, cross-entropy and AdamW; on CUDA the bias + activation
//! epilogue, the fused softmax cross-entropy and the multi-tensor AdamW. A
//! deliberately wrong kernel is caught by its self-check in
//! tests/selfcheck.rs (CPU) and tests/cuda_kernels.rs (CUDA).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use joulebench::ops::selfcheck::{check_ops, rel_error};
use joulebench::train::optim::TrainOptimizer;

test_device!(
    layer_and_loss,
    the_fused_layer_and_loss_match_candle,
    the_fused_layer_and_loss_match_candle_on_cuda
);

fn layer_and_loss(dev: &Device) {
    let f32_err = common::layer_and_loss_against_candle(dev, DType::F32);
    assert!(
        f32_err < 1e-4,
        "f32 layer and loss differ from candle's by {f32_err}"
    );
    // bf16: one rounding of each product and output (2^-9), through a layer.
    let bf16_err = common::layer_and_loss_against_candle(dev, DType::BF16);
    assert!(
        bf16_err < 5e-2,
        "bf16 layer and loss differ from candle's by {bf16_err}"
    );
}

test_device!(
    adamw_on,
    the_fused_adamw_matches_candle_nn_over_ten_steps,
    the_fused_adamw_matches_candle_nn_over_ten_steps_on_cuda
);

/// The trainer's fused AdamW (CPU: one pass per tensor; CUDA: one launch
/// for all tensors) against candle_nn's on three tensors, ten steps.
fn adamw_on(dev: &Device) {
    let cfg = joulebench::config::OptimizerConfig {
        kind: joulebench::config::OptimizerKind::Adamw,
        learning_rate: 0.01,
        momentum: 0.0,
        weight_decay: 0.1,
        fused: true,
    };
    let init = |n: usize, seed: u64| {
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 7 + seed) as f32 * 0.37).sin())
            .collect();
        Tensor::from_vec(v, n, dev).unwrap()
    };
    let sizes = [300usize, 1, 4099];
    let make = || -> Vec<Var> {
        sizes
            .iter()
            .zip(1..)
            .map(|(&n, s)| Var::from_tensor(&init(n, s)).unwrap())
            .collect()
    };
    let (ours, theirs) = (make(), make());
    let mut fused = TrainOptimizer::new(&cfg, ours.clone()).unwrap();
    assert!(
        !matches!(fused, TrainOptimizer::AdamW(_)),
        "the fused AdamW did not take {dev:?} parameters"
    );
    let mut reference = candle_nn::AdamW::new(
        theirs.clone(),
        candle_nn::ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let coeffs: Vec<Tensor> = sizes.iter().zip(10..).map(|(&n, s)| init(n, s)).collect();
    for step in 0..10 {
        let loss = |vs: &[Var]| {
            vs.iter()
                .zip(&coeffs)
                .map(|(v, c)| {
                    let lin = (v.as_tensor() * c).unwrap().sum_all().unwrap();
                    let quad = (v.as_tensor().sqr().unwrap().sum_all().unwrap()
                        * (0.1 * step as f64))
                        .unwrap();
                    (lin + quad).unwrap()
                })
                .reduce(|a, b| (a + b).unwrap())
                .unwrap()
        };
        fused.step(&loss(&ours).backward().unwrap()).unwrap();
        reference.step(&loss(&theirs).backward().unwrap()).unwrap();
    }
    for (a, b) in ours.iter().zip(&theirs) {
        let err = rel_error(a.as_tensor(), b.as_tensor()).unwrap();
        assert!(
            err < 1e-5,
            "{dev:?}: the fused AdamW is {err} off candle_nn's"
        );
    }
}

test_device!(
    self_checks_on,
    every_kernel_passes_its_self_check,
    every_kernel_passes_its_self_check_on_cuda
);

fn self_checks_on(dev: &Device) {
    let checks = check_ops(dev);
    assert!(!checks.is_empty(), "no kernel was checked on {dev:?}");
    for c in checks {
        assert!(c.passed && c.action == "in use", "{c:?}");
        assert!(c.max_rel_error <= c.tolerance, "{c:?}");
    }
}
