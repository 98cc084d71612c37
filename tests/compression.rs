//! Compression: pruning sparsity, quantization size and agreement.

mod common;

use candle_core::{DType, Device, Tensor};
use joulebench::init::SeededVars;
use joulebench::model::{ModelKind, ModelSize};
use joulebench::prune::{self, PruneConfig, Pruner, Schedule, Scope};
use joulebench::trainer::Hooks;

fn mlp_vars(seed: u64) -> (Box<dyn joulebench::model::Model>, SeededVars) {
    let vars = SeededVars::new(seed);
    let m = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &Device::Cpu), 10)
        .unwrap();
    (m, vars)
}

#[test]
fn unstructured_sparsity_equals_the_target_and_survives_optimizer_steps() {
    for scope in [Scope::Layer, Scope::Global] {
        let (m, vars) = mlp_vars(3);
        let cfg = PruneConfig {
            sparsity: 0.9,
            scope,
            schedule: Schedule::OneShot,
            after_epochs: 1,
        };
        let mut p = Pruner::new(cfg, &vars, 10);
        let rec = joulebench::record::EpochRecord {
            epoch: 1,
            steps: 1,
            samples: 1,
            train_loss: None,
            train: common::window("t", 1.0, 1.0, None, joulebench::meter::Provenance::Fake),
            train_samples_per_second: 1.0,
            validation: common::window("v", 1.0, 1.0, None, joulebench::meter::Provenance::Fake),
            val_loss: None,
            val_accuracy: None,
        };
        p.after_epoch(&rec);
        let layers = prune::measure(&vars).unwrap();
        if scope == Scope::Layer {
            for l in &layers {
                let want = (0.9 * l.total as f64).round() as u64;
                assert!(
                    l.zeros.abs_diff(want) <= 1,
                    "{}: {} zeros, want {want}",
                    l.name,
                    l.zeros
                );
            }
        } else {
            let (z, t) = layers
                .iter()
                .fold((0, 0), |a, l| (a.0 + l.zeros, a.1 + l.total));
            assert!(z.abs_diff((0.9 * t as f64).round() as u64) <= 1);
        }
        // An optimizer step moves pruned weights; the hook re-applies the mask.
        let mut opt = candle_nn::AdamW::new_lr(vars.var_map().all_vars(), 0.1).unwrap();
        let x = Tensor::rand(0f32, 1.0, (16, 784), &Device::Cpu).unwrap();
        let y = Tensor::from_vec(
            (0..16u32).map(|i| i % 10).collect::<Vec<_>>(),
            16,
            &Device::Cpu,
        )
        .unwrap();
        let loss = candle_nn::loss::cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
        candle_nn::Optimizer::backward_step(&mut opt, &loss).unwrap();
        let moved = prune::measure(&vars).unwrap();
        assert!(
            moved.iter().any(|l| l.zeros < l.total * 8 / 10),
            "AdamW should have moved some zeros"
        );
        p.after_step(1, &vars).unwrap();
        assert_eq!(
            prune::measure(&vars).unwrap(),
            layers,
            "mask re-applied after the step"
        );
    }
}

#[test]
fn gradual_schedule_is_zhu_and_gupta_cubic() {
    assert_eq!(prune::cubic(0.9, 0, 100), 0.0);
    assert!((prune::cubic(0.9, 50, 100) - 0.9 * (1.0 - 0.125)).abs() < 1e-12);
    assert_eq!(prune::cubic(0.9, 100, 100), 0.9);
    assert_eq!(prune::cubic(0.9, 150, 100), 0.9);
}

#[test]
fn q8_0_is_about_3_8x_smaller_and_agrees_with_f32() {
    let vars = SeededVars::new(5);
    // Widths divisible by 32: no padding, the pure q8_0 ratio (4 * 32 / 34 = 3.76).
    let m = ModelKind::Mlp
        .build(
            vars.builder(DType::F32, &Device::Cpu),
            10,
            &ModelSize::Mlp {
                hidden: vec![256, 128],
            },
        )
        .unwrap();
    let q = m
        .quantized(candle_core::quantized::GgmlDType::Q8_0)
        .unwrap()
        .unwrap();
    let ratio_no_pad = {
        // fc2 (128x256) and fc3 (10x128) have no padding; fc1 (256x784) pads 784 -> 800.
        q.bytes.f32 as f64 / q.bytes.quantized as f64
    };
    assert!((3.6..=3.8).contains(&ratio_no_pad), "{ratio_no_pad}");
    let x = Tensor::rand(0f32, 1.0, (8, 784), &Device::Cpu).unwrap();
    let a = m.forward(&x).unwrap();
    let b = q.model.forward(&x).unwrap();
    let err = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let mag = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        err < 0.02 * mag.max(1e-3),
        "q8_0 logits differ by {err} (magnitude {mag})"
    );
    let am: Vec<u32> = a.argmax(1).unwrap().to_vec1().unwrap();
    let bm: Vec<u32> = b.argmax(1).unwrap().to_vec1().unwrap();
    assert_eq!(am, bm);
    // Models without quantization support say so.
    let t = ModelKind::CharTransformer
        .build(
            vars.builder(DType::F32, &Device::Cpu),
            5,
            &ModelSize::Transformer {
                d_model: 8,
                layers: 1,
                heads: 2,
                context: 4,
                tied: true,
            },
        )
        .unwrap();
    assert!(
        t.quantized(candle_core::quantized::GgmlDType::Q8_0)
            .unwrap()
            .is_none()
    );
}

#[test]
fn quantized_accuracy_is_within_a_point_on_a_fashion_mnist_subset() {
    let Some(dir) = common::real_dataset() else {
        return;
    };
    let text = "name = \"q\"\n[defaults]\nseeds = [1]\nmax_train_samples = 5000\nmax_eval_samples = 2000\n[[workload]]\nname = \"mlp\"\nquantize = \"q8_0\"\n";
    let spec = joulebench::suite::Suite::parse(std::path::Path::new("q.toml"), text)
        .unwrap()
        .plan()
        .unwrap()
        .trials
        .remove(0);
    let splits = joulebench::data::fashion_mnist::load(&dir).unwrap();
    let dev = Device::Cpu;
    let train = splits.train.take(Some(5000)).to_device(&dev).unwrap();
    let test = splits.test.take(Some(2000)).to_device(&dev).unwrap();
    let (out, _) = common::train_on(&spec, 10, &train, &test, &test);
    let q = out.quantization.unwrap();
    assert!(q.error.is_none());
    let d = q.accuracy_change_pp.unwrap();
    eprintln!(
        "q8_0: size ratio {:.2}, accuracy change {d:.2} pp",
        q.size_ratio
    );
    assert!(d.abs() <= 1.0, "q8_0 accuracy changed by {d} pp");
}

#[test]
fn sparsity_outside_zero_one_is_rejected() {
    let e = joulebench::suite::Suite::parse(
        std::path::Path::new("s.toml"),
        "name = \"s\"\n[[workload]]\nname = \"mlp\"\nprune_sparsity = 1.0\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("field `workload[mlp].prune_sparsity` = 1 is not allowed: sparsity is the fraction of weights set to zero, in [0, 1)"), "{e}");
}
