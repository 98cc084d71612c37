//! The custom kernels' run-time self-checks: a kernel made deliberately wrong
//! (`JOULEBENCH_FAULTY_KERNEL`) is caught before the first trial, switched
//! off, recorded in the manifest and the report, and never trains: the run
//! completes on candle's ops with the same results as a run whose kernels
//! were never used.

mod common;

use common::{SuiteEnv, text};
use joulebench::ops::selfcheck::Kernel;
use joulebench::runfolder::manifest::Manifest;
use std::path::{Path, PathBuf};

const SUITE: &str = r#"
name = "s"
[defaults]
seeds = [1]
epochs = 1
batch_size = 32
max_train_samples = 256
max_eval_samples = 128
[[workload]]
name = "cnn"
channels = [4, 8]
fc_width = 16
[[variant]]
name = "baseline"
"#;

fn only_run(out: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(out.join("s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

/// Runs the suite with `faulty` kernels: the manifest, the one trial's test
/// accuracy and loss, and the output with the report.
fn run(env: &SuiteEnv, faulty: &str, extra: &[&str]) -> (Manifest, f64, f64, String) {
    let out = env.path(&format!("out-{}", faulty.replace(',', "-")));
    let o = env
        .bin()
        .args([
            "run",
            "s.toml",
            "--meter",
            "fake",
            "--idle-seconds",
            "0",
            "--out",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(&env.data)
        .args(extra)
        .env("JOULEBENCH_FAULTY_KERNEL", faulty)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = only_run(&out);
    let m = Manifest::from_json(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let (recs, _, _) =
        joulebench::runfolder::store::read_records(&run.join("trials.jsonl")).unwrap();
    let test = recs[0].test.as_ref().expect("test window");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap_or_default();
    (m, test.accuracy, test.loss, format!("{}{report}", text(&o)))
}

const FAULTY: &str = "linear,conv2d,max-pool2,cross-entropy,gelu,fused-optimizer";

#[test]
fn a_run_records_its_checks_and_completes_with_wrong_kernels_switched_off() {
    let env = SuiteEnv::new(SUITE);
    let (clean, acc0, loss0, _) = run(&env, "", &[]);
    assert!(!clean.kernel_checks.is_empty());
    for c in &clean.kernel_checks {
        assert!(c.passed && c.action == "in use", "{c:?}");
        assert!(c.max_rel_error < 1e-5, "{c:?}");
    }
    let names: Vec<Kernel> = clean.kernel_checks.iter().map(|c| c.kernel).collect();
    for k in [
        Kernel::Linear,
        Kernel::Conv2d,
        Kernel::MaxPool2,
        Kernel::CrossEntropy,
        Kernel::FusedOptimizer,
    ] {
        assert!(names.contains(&k), "{k} not checked: {names:?}");
    }

    let (bad, acc1, loss1, log) = run(&env, FAULTY, &[]);
    assert_eq!(bad.kernel_checks.len(), clean.kernel_checks.len());
    for c in &bad.kernel_checks {
        if c.kernel == Kernel::Bf16Gemm {
            continue;
        }
        assert!(!c.passed, "{c:?}");
        assert!(c.max_rel_error > c.tolerance, "{c:?}");
        assert!(c.action.starts_with("disabled"), "{c:?}");
    }
    assert!(log.contains("switched off"), "{log}");
    assert!(log.contains("kernel linear"), "the report names it: {log}");
    // On candle's ops the trial learns as well as with the kernels; a
    // corrupted loss kernel would be off by 1 here.
    assert!((acc1 - acc0).abs() < 0.05, "{acc1} vs {acc0}");
    assert!((loss1 - loss0).abs() < 0.05, "{loss1} vs {loss0}");
}

/// In this process every kernel is faulty: the checks switch each off, and
/// afterwards every op returns candle's result, so the faulty builds are
/// never used.
#[test]
fn wrong_kernels_fail_their_checks_and_their_callers_fall_back_to_candle() {
    use candle_core::{Device, Tensor};
    use joulebench::ops::{Activation, conv, cross_entropy, linear, pool, selfcheck};
    // SAFETY: set before any kernel runs in this test binary (the other test
    // spawns processes and runs no kernel here).
    unsafe { std::env::set_var("JOULEBENCH_FAULTY_KERNEL", format!("{FAULTY},bf16-gemm")) };
    let checks = joulebench::train::self_check(&Device::Cpu);
    assert!(checks.len() >= 5);
    for c in &checks {
        assert!(!c.passed && !selfcheck::enabled(c.kernel), "{c:?}");
    }
    // With the bf16 engine switched off, bf16 layers take the converting path.
    let path = joulebench::ops::bf16_gemm::path();
    assert!(path.starts_with("converting"), "{path}");
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (4, 2, 8, 8), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (3, 2, 3, 3), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
    let spec = conv::ConvSpec {
        stride: 1,
        pad: 1,
        groups: 1,
        max_pool2: true,
    };
    let got = conv::conv2d_fused(&x, &w, Some(&b), spec, Activation::Relu).unwrap();
    let want = x
        .conv2d(&w, 1, 1, 1, 1)
        .unwrap()
        .broadcast_add(&b.reshape((1, 3, 1, 1)).unwrap())
        .unwrap()
        .relu()
        .unwrap()
        .max_pool2d(2)
        .unwrap();
    assert!(selfcheck::rel_error(&got, &want).unwrap() < 1e-5);
    let p = pool::max_pool2(&x).unwrap();
    assert!(selfcheck::rel_error(&p, &x.max_pool2d(2).unwrap()).unwrap() < 1e-6);
    let xs = x.flatten_from(1).unwrap();
    let wl = Tensor::randn(0f32, 1.0, (10, 128), &dev).unwrap();
    let bl = Tensor::randn(0f32, 1.0, 10, &dev).unwrap();
    let y = linear::linear(&xs, &wl, Some(&bl), Activation::Identity).unwrap();
    let want = xs
        .matmul(&wl.t().unwrap())
        .unwrap()
        .broadcast_add(&bl)
        .unwrap();
    assert!(selfcheck::rel_error(&y, &want).unwrap() < 1e-5);
    // Under autocast the fallbacks keep bf16 numbers: candle's f32 ops on
    // inputs rounded to bf16, the output rounded too.
    {
        let _autocast = joulebench::ops::numerics::autocast_bf16();
        let bf = |t: &Tensor| {
            t.to_dtype(candle_core::DType::BF16)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
        };
        let y = linear::linear(&xs, &wl, Some(&bl), Activation::Identity).unwrap();
        let want = bf(&bf(&xs)
            .matmul(&bf(&wl).t().unwrap())
            .unwrap()
            .broadcast_add(&bf(&bl))
            .unwrap());
        assert_eq!(y.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
        let c = conv::conv2d_fused(&x, &w, Some(&b), spec, Activation::Relu).unwrap();
        assert_eq!(c.dtype(), candle_core::DType::F32);
        let flat = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(flat.iter().all(|v| {
            *v == bf(&Tensor::new(&[*v], &dev).unwrap())
                .to_vec1::<f32>()
                .unwrap()[0]
        }));
    }
    let labels = Tensor::new(&[1u32, 0, 9, 3], &dev).unwrap();
    let l = cross_entropy::cross_entropy(&y, &labels).unwrap();
    let want = candle_nn::loss::cross_entropy(&y, &labels).unwrap();
    assert!(selfcheck::rel_error(&l, &want).unwrap() < 1e-6);
    let cfg = joulebench::config::OptimizerConfig {
        kind: joulebench::config::OptimizerKind::Adamw,
        learning_rate: 1e-3,
        momentum: 0.0,
        weight_decay: 0.01,
        fused: true,
    };
    let var = candle_core::Var::from_tensor(&b).unwrap();
    let opt = joulebench::train::optim::TrainOptimizer::new(&cfg, vec![var]).unwrap();
    assert!(!matches!(
        opt,
        joulebench::train::optim::TrainOptimizer::Fused(_)
    ));
}
