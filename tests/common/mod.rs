//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes a small synthetic Fashion-MNIST-shaped dataset (5,600 training
/// images: 5,000 validation + 600 training; 400 test).
pub fn fixture_dataset(dir: &Path) -> PathBuf {
    let d = dir.join("fmnist");
    joulebench::data::fashion_mnist::write_fixture(&d, 5_600, 400, 7).unwrap();
    d
}

/// The real Fashion-MNIST folder, or None (the test then skips) unless
/// JOULEBENCH_REQUIRE_DATA=1, which turns a missing dataset into a failure (CI).
pub fn real_dataset() -> Option<PathBuf> {
    let dir = joulebench::data::fashion_mnist::resolve_dir(None, None);
    if dir.join("train-images-idx3-ubyte.gz").exists()
        || dir.join("train-images-idx3-ubyte").exists()
    {
        return Some(dir);
    }
    if std::env::var("JOULEBENCH_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!(
            "JOULEBENCH_REQUIRE_DATA=1 but Fashion-MNIST is missing in {}: apt-get install dataset-fashion-mnist",
            dir.display()
        );
    }
    eprintln!("skipping: Fashion-MNIST not installed in {}", dir.display());
    None
}

use joulebench::meter::window::DomainEnergy;
use joulebench::meter::{EnergyReading, Provenance};
use joulebench::record::{EpochRecord, EvalRecord, InferenceRecord, TrialRecord, TrialStatus};
use joulebench::suite::Suite;
use joulebench::util::units::{Joules, Seconds, Watts};

pub fn window(
    name: &str,
    joules: f64,
    seconds: f64,
    idle_w: Option<f64>,
    prov: Provenance,
) -> EnergyReading {
    let idle = idle_w.map(|w| Joules(w * seconds));
    EnergyReading {
        window: name.into(),
        started_unix: None,
        seconds: Seconds(seconds),
        joules: Joules(joules),
        avg_watts: Watts(joules / seconds),
        domains: vec![DomainEnergy {
            domain: "cpu-package:0".into(),
            meter: "test".into(),
            provenance: prov,
            joules: Joules(joules),
            avg_watts: Watts(joules / seconds),
            peak_watts: None,
            idle_joules: idle,
            net_joules: idle.map(|i| Joules(joules) - i),
            band: None,
            net_band: None,
            cross_check_joules: None,
            charged_seconds: None,
        }],
        idle_joules: idle,
        net_joules: idle.map(|i| Joules(joules) - i),
        band: None,
        net_band: None,
        flags: vec![],
        timeline: vec![],
        gpu_states: vec![],
        interference: None,
        validity: None,
    }
}

pub const FIXTURE_SUITE: &str = r#"
name = "fixture"
baseline = "base"
[defaults]
seeds = [1, 2, 3, 4]
epochs = 3
[[workload]]
name = "mlp"
[[variant]]
name = "base"
batch_size = 32
[[variant]]
name = "fast"
batch_size = 128
"#;

/// A deterministic run folder: variant `fast` uses `energy_factor` x the
/// energy of `base` (plus a small per-seed wobble) and `acc_delta` accuracy.
pub fn fixture_run(dir: &Path, energy_factor: f64, acc_delta: f64, prov: Provenance) -> PathBuf {
    let suite = Suite::parse(Path::new("fixture.toml"), FIXTURE_SUITE).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("suite.toml"), FIXTURE_SUITE).unwrap();
    let mut lines = String::new();
    for spec in suite.plan().unwrap().trials {
        let fast = spec.key.variant == "fast";
        let wobble = 1.0 + 0.01 * spec.key.seed as f64;
        let f = if fast { energy_factor } else { 1.0 };
        let acc0 = 0.80 + 0.002 * spec.key.seed as f64 + if fast { acc_delta } else { 0.0 };
        let epochs: Vec<EpochRecord> = (1..=3)
            .map(|e| EpochRecord {
                epoch: e,
                steps: 10,
                samples: 1000,
                train_loss: Some(1.0 / e as f64),
                train: window("train", 100.0 * f * wobble, 10.0 * f, Some(2.0), prov),
                train_samples_per_second: 100.0,
                validation: window("validation", 5.0 * f, 0.5, Some(2.0), prov),
                val_loss: Some(0.5),
                val_accuracy: Some(acc0 - 0.05 * (3 - e) as f64),
                phases: None,
                batch: None,
            })
            .collect();
        let training = EnergyReading::sum("training", epochs.iter().map(|e| &e.train));
        let r = TrialRecord {
            schema_version: 1,
            suite: "fixture".into(),
            trial_index: spec.index,
            trial_id: spec.id(),
            key: spec.key.clone(),
            config: spec.config.clone(),
            device: "cpu".into(),
            meter: "test".into(),
            status: TrialStatus::Completed,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: "2026-01-01T00:01:00.000Z".into(),
            parameters: 535_818,
            macs_per_sample: 535_040,
            flops_per_train_sample: 6 * 535_040,
            flops_per_inference_unit: 2 * 535_040,
            data: None,
            epochs,
            training: Some(training),
            train_samples_per_second: Some(100.0),
            test: Some(EvalRecord {
                window: window("test", 4.0, 0.4, Some(2.0), prov),
                samples: 1000,
                loss: 0.4,
                accuracy: acc0,
                bits_per_token: None,
            }),
            inference: Some(InferenceRecord {
                window: window("inference", 2.0, 0.2, Some(2.0), prov),
                samples: 1000,
                unit: "samples".into(),
                batch_size: 1000,
                samples_per_second: 5000.0,
                joules_per_1k: Joules(2.0),
                warmup_batches: 1,
            }),
            idle: Some(window("idle", 4.0, 2.0, None, prov)),
            impact: None,
            evaluations: vec![],
            precision: None,
            stop: None,
            quantization: None,
            sparse: None,
            pruning: None,
            structured: None,
            distillation: None,
            weights_file: None,
            gpu_self_check: vec![],
            validity: None,
            warmup: None,
            gpu_settings: None,
            placement: None,
        };
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    std::fs::write(run.join("trials.jsonl"), lines).unwrap();
    run
}

/// Trains one trial on device splits with a silent 10 W fake meter and no hooks.
pub fn train_on(
    spec: &joulebench::config::TrialSpec,
    classes: usize,
    train: &joulebench::data::DeviceSplit,
    validation: &joulebench::data::DeviceSplit,
    test: &joulebench::data::DeviceSplit,
) -> (
    joulebench::train::TrainOutcome,
    joulebench::train::init::SeededVars,
) {
    use candle_core::{DType, Device};
    let vars = joulebench::train::init::SeededVars::new(spec.key.seed);
    let kind = spec.config.model;
    let size = spec.config.size.clone();
    let build = |dt: DType| kind.build(vars.builder(dt, &Device::Cpu), classes, &size);
    let mut m = joulebench::meter::Measurer::new(
        Box::new(joulebench::meter::fake::ConstantPowerMeter::new(vec![(
            "cpu-fake".into(),
            Watts(10.0),
        )])),
        Device::Cpu,
    );
    let out = joulebench::train::train(
        spec,
        &build,
        &vars,
        joulebench::train::TrialData {
            train,
            validation,
            test,
        },
        &mut m,
        &mut joulebench::train::NoHooks,
        &joulebench::train::Silent,
    )
    .unwrap();
    (out, vars)
}

/// Runs a test body on the CPU and, when built with `--features cuda`, on
/// CUDA device 0 as well (candle's `test_device!` pattern):
/// `test_device!(body_fn, cpu_test_name, cuda_test_name);`
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() {
            $body(&candle_core::Device::Cpu);
        }
        #[cfg(feature = "cuda")]
        #[test]
        fn $cuda() {
            $body(&candle_core::Device::new_cuda(0).expect("a CUDA device"));
        }
    };
}

/// Largest absolute element of a tensor.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest absolute elementwise difference of two tensors.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// A temporary folder holding a suite (`s.toml`) and the fixture dataset,
/// and the joulebench binary run in it, with no scheduler variables leaking
/// in from the environment the tests run in.
pub struct SuiteEnv {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
}

impl SuiteEnv {
    pub fn new(suite: &str) -> SuiteEnv {
        let dir = tempfile::tempdir().unwrap();
        let data = fixture_dataset(dir.path());
        std::fs::write(dir.path().join("s.toml"), suite).unwrap();
        SuiteEnv { dir, data }
    }

    /// The binary, in the folder, logging warnings only.
    pub fn bin(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_joulebench"));
        c.current_dir(self.dir.path())
            .env("JOULEBENCH_LOG", "warn")
            .env_remove("JOULEBENCH_FASHION_MNIST");
        for v in [
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_COUNT",
            "SLURM_ARRAY_TASK_MIN",
            "SLURM_ARRAY_TASK_STEP",
            "SLURM_ARRAY_JOB_ID",
            "SLURM_JOB_ID",
            "SLURM_RESTART_COUNT",
            "JOB_COMPLETION_INDEX",
            "JOULEBENCH_SHARDS",
            "JOULEBENCH_RUN_DIR",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// `joulebench run s.toml --out out --meter fake --idle-seconds IDLE --data-dir <fixture>`.
    pub fn run_cmd(&self, idle: &str) -> std::process::Command {
        let mut c = self.bin();
        c.args([
            "run",
            "s.toml",
            "--out",
            "out",
            "--meter",
            "fake",
            "--idle-seconds",
            idle,
            "--data-dir",
        ])
        .arg(&self.data);
        c
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A command's stdout and stderr together.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds the NVML stand-in (tools/nvml-standin, dev profile) once per test
/// binary and returns the built library.
pub fn standin_lib() -> &'static Path {
    static LIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--quiet", "-p", "nvml-standin"])
            .current_dir(root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building tools/nvml-standin failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let lib = target.join("debug/libnvml_standin.so");
        assert!(lib.is_file(), "{} missing", lib.display());
        lib
    })
}

/// A layer and its loss through `ops` and through candle's own ops on the
/// same inputs, in `dtype`: the largest relative error of the loss, the
/// layer's output and the weight and bias gradients.
pub fn layer_and_loss_against_candle(dev: &candle_core::Device, dtype: candle_core::DType) -> f64 {
    use candle_core::{DType, Tensor, Var};
    use joulebench::ops::Activation;
    use joulebench::ops::selfcheck::rel_error;
    let x = Tensor::randn(0f32, 1.0, (64, 48), dev).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.2, (20, 48), dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::randn(0f32, 0.2, 20, dev).unwrap()).unwrap();
    let labels = Tensor::from_vec((0..64u32).map(|i| i % 20).collect(), 64, dev).unwrap();
    let run = |fused: bool| {
        let (xd, wd, bd) = (
            x.to_dtype(dtype).unwrap(),
            w.as_tensor().to_dtype(dtype).unwrap(),
            b.as_tensor().to_dtype(dtype).unwrap(),
        );
        let (loss, y) = if fused {
            let y = joulebench::ops::linear::linear(&xd, &wd, Some(&bd), Activation::Relu).unwrap();
            let loss = joulebench::ops::cross_entropy::cross_entropy(&y, &labels).unwrap();
            (loss, y)
        } else {
            let y = xd
                .matmul(&wd.t().unwrap())
                .unwrap()
                .broadcast_add(&bd)
                .unwrap()
                .relu()
                .unwrap();
            let loss = candle_nn::loss::cross_entropy(&y.to_dtype(DType::F32).unwrap(), &labels);
            (loss.unwrap(), y)
        };
        let g = loss.backward().unwrap();
        let gw = g.get(w.as_tensor()).unwrap().clone();
        let gb = g.get(b.as_tensor()).unwrap().clone();
        [loss, y, gw, gb]
    };
    let (a, r) = (run(true), run(false));
    a.iter()
        .zip(&r)
        .map(|(a, r)| rel_error(a, r).unwrap())
        .fold(0.0, f64::max)
}
