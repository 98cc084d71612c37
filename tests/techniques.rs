//! Training-time techniques: mixed precision, accumulation, LR scaling,
//! early stopping, energy- and time-to-accuracy.

mod common;

use candle_core::{DType, Device, Tensor};
use joulebench::config::{EarlyStopping, LrScaling, Precision, StopMetric};
use joulebench::data::fashion_mnist;
use joulebench::meter::{Measurer, fake::ConstantPowerMeter};
use joulebench::model::ModelKind;
use joulebench::record::{EvalPoint, TrialStatus};
use joulebench::suite::Suite;
use joulebench::train::early_stopping::{EarlyStopper, StopReason};
use joulebench::train::grads;
use joulebench::train::init::SeededVars;
use joulebench::train::{self, NoHooks, Silent, TrainOutcome, TrialData};
use std::path::Path;

fn spec(extra: &str) -> joulebench::config::TrialSpec {
    let text =
        format!("name = \"t\"\n[defaults]\nseeds = [3]\n{extra}\n[[workload]]\nname = \"mlp\"\n");
    Suite::parse(Path::new("t.toml"), &text)
        .unwrap()
        .plan()
        .unwrap()
        .trials
        .remove(0)
}

fn run(
    s: &joulebench::config::TrialSpec,
    dir: &Path,
    train_cap: u64,
    eval_cap: u64,
) -> (TrainOutcome, SeededVars) {
    let splits = fashion_mnist::load(dir).unwrap();
    let dev = Device::Cpu;
    let train = splits.train.take(Some(train_cap)).to_device(&dev).unwrap();
    let val = splits
        .validation
        .take(Some(eval_cap))
        .to_device(&dev)
        .unwrap();
    let test = splits.test.take(Some(eval_cap)).to_device(&dev).unwrap();
    common::train_on(s, 10, &train, &val, &test)
}

#[test]
fn lr_scaling_rules_follow_the_effective_batch() {
    assert_eq!(LrScaling::None.apply(0.1, 512, 128), 0.1);
    assert!((LrScaling::Linear.apply(0.1, 512, 128) - 0.4).abs() < 1e-12);
    assert!((LrScaling::Sqrt.apply(0.1, 512, 128) - 0.2).abs() < 1e-12);
    let s = spec(
        "learning_rate = 0.001\nbatch_size = 64\naccumulation_steps = 4\nlr_scaling = \"linear\"\nreference_batch_size = 128",
    );
    assert_eq!(s.config.base_learning_rate, 0.001);
    assert!(
        (s.config.optimizer.learning_rate - 0.002).abs() < 1e-12,
        "effective batch 256 -> 2x"
    );
}

#[test]
fn batch_sizes_expand_into_one_variant_each() {
    let text = "name = \"t\"\n[[workload]]\nname = \"mlp\"\n[[variant]]\nname = \"bs\"\nbatch_sizes = [32, 256]\nlr_scaling = \"sqrt\"\n";
    let s = Suite::parse(Path::new("t.toml"), text).unwrap();
    let plan = s.plan().unwrap();
    let v: Vec<(String, u32)> = plan
        .trials
        .iter()
        .map(|t| (t.key.variant.clone(), t.config.batch_size))
        .collect();
    assert_eq!(
        v,
        [("bs-b32".to_string(), 32), ("bs-b256".to_string(), 256)]
    );
    assert!((plan.trials[1].config.optimizer.learning_rate - 1e-3 * 2f64.sqrt()).abs() < 1e-12);
    let e = Suite::parse(
        Path::new("t.toml"),
        "name = \"t\"\n[[workload]]\nname = \"mlp\"\nprecision = \"fp8\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown precision `fp8`; known: f32, bf16, f16, bf16-pure, tf32"),
        "{e}"
    );
}

test_device!(
    accumulated_gradient_equals_big_batch,
    accumulated_gradient_equals_the_big_batch_gradient,
    accumulated_gradient_equals_the_big_batch_gradient_cuda
);

fn accumulated_gradient_equals_big_batch(dev: &Device) {
    let dev = dev.clone();
    let vars = SeededVars::new(9);
    let model = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &dev), 10)
        .unwrap();
    let all = vars.var_map().all_vars();
    let x = Tensor::rand(0f32, 1.0, (64, 784), &dev).unwrap();
    let y = Tensor::from_vec((0..64u32).map(|i| i % 10).collect::<Vec<_>>(), 64, &dev).unwrap();
    let loss = |x: &Tensor, y: &Tensor| {
        candle_nn::loss::cross_entropy(&model.forward(x).unwrap(), y).unwrap()
    };
    let big = loss(&x, &y).backward().unwrap();
    let mut acc = None;
    for i in 0..4 {
        let g = loss(
            &x.narrow(0, i * 16, 16).unwrap(),
            &y.narrow(0, i * 16, 16).unwrap(),
        )
        .backward()
        .unwrap();
        grads::accumulate(&mut acc, g, &all).unwrap();
    }
    let mut acc = acc.unwrap();
    grads::scale(&mut acc, &all, 0.25).unwrap();
    for v in &all {
        let a = acc.get(v).unwrap();
        let b = big.get(v).unwrap();
        let diff = common::max_abs_diff(a, b);
        let mag = common::max_abs(b);
        assert!(
            diff <= 1e-5 * mag.max(1e-3),
            "diff {diff} vs magnitude {mag}"
        );
    }
    assert!(!grads::any_non_finite(&acc, &all).unwrap());
    let v0 = &all[0];
    let bad = (acc.get(v0).unwrap() * f64::INFINITY).unwrap();
    acc.insert(v0, bad);
    assert!(grads::any_non_finite(&acc, &all).unwrap());
}

fn cfg(patience: Option<u32>, metric: StopMetric, target: Option<f64>) -> EarlyStopping {
    EarlyStopping {
        patience,
        min_delta: 0.01,
        metric,
        target_accuracy: target,
    }
}

#[test]
fn early_stopping_stops_at_the_right_evaluation_on_a_scripted_curve() {
    // Loss improves, then plateaus within min_delta: patience 2 stops at the 5th evaluation.
    let losses = [1.0, 0.8, 0.7, 0.695, 0.699, 0.5];
    let mut s = EarlyStopper::new(cfg(Some(2), StopMetric::ValLoss, None));
    let stops: Vec<Option<StopReason>> = losses
        .iter()
        .map(|&l| s.observe(Some(l), Some(0.5)))
        .collect();
    assert_eq!(stops.iter().position(|x| x.is_some()), Some(4));
    assert_eq!(stops[4], Some(StopReason::PatienceExhausted));
    // Accuracy metric: higher is better.
    let mut s = EarlyStopper::new(cfg(Some(1), StopMetric::ValAccuracy, None));
    assert_eq!(s.observe(None, Some(0.70)), None);
    assert_eq!(s.observe(None, Some(0.75)), None);
    assert_eq!(
        s.observe(None, Some(0.755)),
        Some(StopReason::PatienceExhausted)
    );
    // Target stop: the first evaluation at or above the target.
    let mut s = EarlyStopper::new(cfg(None, StopMetric::ValLoss, Some(0.8)));
    let accs = [0.6, 0.79, 0.8, 0.85];
    let first = accs
        .iter()
        .position(|&a| s.observe(Some(1.0), Some(a)).is_some());
    assert_eq!(first, Some(2));
}

#[test]
fn target_stop_in_training_and_eta_from_the_recorded_curve() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let s = spec("epochs = 20\nbatch_size = 32\neval_every_steps = 5\ntarget_accuracy = 0.5");
    let (out, _) = run(&s, &data, 600, 500);
    let stop = out.stop.as_ref().expect("target reached before 20 epochs");
    assert_eq!(stop.reason, StopReason::TargetReached);
    let last = out.evaluations.last().unwrap();
    assert!(last.val_accuracy.unwrap() >= 0.5);
    assert!(
        out.evaluations[..out.evaluations.len() - 1]
            .iter()
            .all(|e| e.val_accuracy.unwrap() < 0.5)
    );
    assert_eq!(last.step, stop.step);
    assert!(
        out.evaluations
            .windows(2)
            .all(|w| w[1].cumulative_joules > w[0].cumulative_joules)
    );
    assert!(out.epochs.len() < 20);
    assert_eq!(out.status, TrialStatus::Completed);
}

#[test]
fn eta_and_tta_from_a_recorded_curve_match_hand_computed_values() {
    use joulebench::analysis::aggregate::energy_to_accuracy;
    use joulebench::util::units::{Joules, Seconds};
    let dir = tempfile::tempdir().unwrap();
    let run_dir = common::fixture_run(dir.path(), 1.0, 0.0, joulebench::meter::Provenance::Counter);
    let mut r = joulebench::analysis::Run::load(&run_dir)
        .unwrap()
        .records
        .remove(0);
    let pt = |step, j, s, a| EvalPoint {
        step,
        epoch: 1,
        samples_seen: step * 32,
        cumulative_joules: Joules(j),
        cumulative_net_joules: None,
        cumulative_seconds: Seconds(s),
        val_loss: None,
        val_accuracy: Some(a),
    };
    r.evaluations = vec![
        pt(10, 50.0, 5.0, 0.60),
        pt(20, 101.0, 10.2, 0.74),
        pt(30, 152.5, 15.1, 0.81),
        pt(40, 200.0, 20.0, 0.79),
    ];
    let eta = |target| energy_to_accuracy(&r, target).map(|(j, s)| (j.0, s.0));
    assert_eq!(eta(0.74), Some((101.0, 10.2)));
    assert_eq!(eta(0.80), Some((152.5, 15.1)));
    assert_eq!(eta(0.5), Some((50.0, 5.0)));
    assert_eq!(energy_to_accuracy(&r, 0.9), None, "never reached");
}

#[test]
fn mixed_precision_keeps_f32_master_weights_and_f16_scaler_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    for (p, act) in [("bf16", "bf16"), ("f16", "f16")] {
        let s = spec(&format!("epochs = 1\nbatch_size = 64\nprecision = \"{p}\""));
        let (out, vars) = run(&s, &data, 600, 300);
        for v in vars.var_map().all_vars() {
            assert_eq!(v.dtype(), DType::F32, "{p}: master weights must stay f32");
        }
        assert_eq!(out.precision.weights, "f32");
        // bf16 on the CPU runs as autocast: f32 tensors holding bf16 values.
        assert!(out.precision.activations.starts_with(act), "{p}");
        assert_eq!(
            out.precision.activations.contains("autocast"),
            p == "bf16",
            "{}",
            out.precision.activations
        );
        assert_eq!(out.precision.optimizer_state, "f32");
        assert_eq!(out.status, TrialStatus::Completed);
        assert!(out.test.unwrap().accuracy > 0.3, "{p} learned nothing");
        if p == "f16" {
            assert!(out.precision.final_loss_scale.is_some());
        }
    }
    let s = spec("epochs = 1\nbatch_size = 64\nprecision = \"bf16-pure\"");
    let (out, vars) = run(&s, &data, 600, 300);
    assert!(
        vars.var_map()
            .all_vars()
            .iter()
            .all(|v| v.dtype() == DType::BF16)
    );
    assert_eq!(out.precision.weights, "bf16");
    let _ = Precision::Tf32;
}

#[test]
fn tf32_on_cpu_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let s = spec("precision = \"tf32\"");
    let splits = fashion_mnist::load(&data).unwrap();
    let d = splits.train.take(Some(64)).to_device(&Device::Cpu).unwrap();
    let vars = SeededVars::new(1);
    let build = |dt: DType| ModelKind::Mlp.build_default(vars.builder(dt, &Device::Cpu), 10);
    let mut m = Measurer::new(Box::new(ConstantPowerMeter::new(vec![])), Device::Cpu);
    let e = train::train(
        &s,
        &build,
        &vars,
        TrialData {
            train: &d,
            validation: &d,
            test: &d,
        },
        &mut m,
        &mut NoHooks,
        &Silent,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("tf32 is a CUDA tensor-core matmul mode"), "{e}");
}

#[test]
fn a_kernel_candle_lacks_fails_with_the_reason_and_no_backtrace() {
    // candle's bf16 conv2d on the CPU reaches a matmul it lacks (the fused
    // ops go around it).
    let x = Tensor::zeros((1, 1, 6, 6), DType::BF16, &Device::Cpu).unwrap();
    let w = Tensor::zeros((2, 1, 3, 3), DType::BF16, &Device::Cpu).unwrap();
    let err = x.conv2d(&w, 1, 1, 1, 1).unwrap_err();
    let e = joulebench::train::TrainError::from(err).to_string();
    assert!(e.contains("unsupported dtype BF16 for op matmul"), "{e}");
    assert!(e.contains("on a CPU use f32 or f16"), "{e}");
    assert!(!e.contains("candle_core::error::Error::bt"), "{e}");
}

#[test]
fn bf16_runs_every_image_workload_on_the_cpu_and_records_its_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    for model in ["cnn", "separable-cnn", "mlp"] {
        for p in ["bf16", "bf16-pure"] {
            let s = spec(&format!("epochs = 1\nbatch_size = 64\nprecision = \"{p}\""));
            let s = joulebench::config::TrialSpec {
                config: joulebench::config::TrialConfig {
                    model: joulebench::config::ModelKind::parse(model).unwrap(),
                    size: joulebench::config::ModelKind::parse(model)
                        .unwrap()
                        .default_size(),
                    ..s.config
                },
                ..s
            };
            let (out, _) = run(&s, &data, 256, 128);
            assert_eq!(out.status, TrialStatus::Completed, "{model} {p}");
            assert!(out.precision.activations.starts_with("bf16"));
            // The engine this CPU runs (AMX where it has it), as recorded.
            let path = out.precision.cpu_bf16_path.unwrap_or_default();
            assert_eq!(path, joulebench::ops::bf16_gemm::path(), "{model} {p}");
            assert!(
                ["amx-bf16", "avx512-bf16", "converting"]
                    .iter()
                    .any(|e| path.starts_with(e)),
                "{model} {p}: {path}"
            );
            assert!(out.test.unwrap().loss.is_finite(), "{model} {p}");
        }
    }
}

#[test]
fn bf16_mlp_lands_within_1_5_points_of_f32_on_real_fashion_mnist() {
    let Some(dir) = common::real_dataset() else {
        return;
    };
    let acc = |p: &str| {
        let s = spec(&format!(
            "epochs = 2\nbatch_size = 128\nprecision = \"{p}\""
        ));
        run(&s, &dir, 10_000, 5_000).0.test.unwrap().accuracy
    };
    let (f32_acc, bf16_acc) = (acc("f32"), acc("bf16"));
    eprintln!("f32 {:.2}%  bf16 {:.2}%", f32_acc * 100.0, bf16_acc * 100.0);
    assert!(
        (f32_acc - bf16_acc).abs() <= 0.015,
        "f32 {f32_acc} vs bf16 {bf16_acc}"
    );
}

/// Trains two identical MLPs for 100 steps on the same batches, one with
/// `reference`'s optimizer step and one with the fused optimizer, and checks
/// the weights agree to 1e-5 relative.
fn fused_matches_after_100_steps(
    mut reference: impl FnMut(Vec<candle_core::Var>) -> Box<dyn FnMut(&Tensor)>,
    rule: joulebench::train::fused_optim::Rule,
) {
    let dev = Device::Cpu;
    let mk = || {
        let vars = SeededVars::new(21);
        let m = ModelKind::Mlp
            .build(
                vars.builder(DType::F32, &dev),
                10,
                &joulebench::model::ModelSize::Mlp {
                    hidden: vec![300, 40],
                },
            )
            .unwrap();
        (vars, m)
    };
    let (va, ma) = mk();
    let (vb, mb) = mk();
    let mut a = reference(va.var_map().all_vars());
    let mut b =
        joulebench::train::fused_optim::FusedOptimizer::new(vb.var_map().all_vars(), rule).unwrap();
    let mut rng = joulebench::util::rng::Rng::new(5);
    for step in 0..100 {
        let xs: Vec<f32> = (0..32 * 784).map(|_| rng.next_f64() as f32).collect();
        let x = Tensor::from_vec(xs, (32, 784), &dev).unwrap();
        let y = Tensor::from_vec(
            (0..32u32).map(|i| (i + step) % 10).collect::<Vec<_>>(),
            32,
            &dev,
        )
        .unwrap();
        a(&candle_nn::loss::cross_entropy(&ma.forward(&x).unwrap(), &y).unwrap());
        let lb = candle_nn::loss::cross_entropy(&mb.forward(&x).unwrap(), &y).unwrap();
        b.step(&lb.backward().unwrap()).unwrap();
    }
    for name in [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc3.weight",
        "fc3.bias",
    ] {
        let wa = va.get(name).unwrap();
        let wb = vb.get(name).unwrap();
        let diff = common::max_abs_diff(&wa, &wb);
        let mag = common::max_abs(&wa);
        let rel = diff / mag;
        assert!(rel < 1e-5, "{rule:?} {name}: relative difference {rel}");
    }
}

#[test]
fn fused_adamw_matches_candle_nn_adamw_after_100_steps() {
    use candle_nn::Optimizer;
    let params = candle_nn::ParamsAdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    fused_matches_after_100_steps(
        |vars| {
            let mut o = candle_nn::AdamW::new(vars, params.clone()).unwrap();
            Box::new(move |loss| o.backward_step(loss).unwrap())
        },
        joulebench::train::fused_optim::Rule::adamw(&params),
    );
}

#[test]
fn fused_sgd_momentum_matches_the_tensor_op_version_after_100_steps() {
    fused_matches_after_100_steps(
        |vars| {
            let mut o = joulebench::train::optim::SgdMomentum::new(vars, 0.05, 0.9, 1e-3);
            Box::new(move |loss| o.step(&loss.backward().unwrap()).unwrap())
        },
        joulebench::train::fused_optim::Rule::SgdMomentum {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-3,
        },
    );
}
