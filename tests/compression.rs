//! Compression: pruning sparsity, quantization size and agreement.

mod common;

use candle_core::{DType, Device, Tensor};
use joulebench::model::{ModelKind, ModelSize};
use joulebench::technique::prune::{self, PruneConfig, Pruner, Schedule, Scope};
use joulebench::train::Hooks;
use joulebench::train::init::SeededVars;

fn mlp_vars(seed: u64) -> (Box<dyn joulebench::model::Model>, SeededVars) {
    let vars = SeededVars::new(seed);
    let m = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &Device::Cpu), 10)
        .unwrap();
    (m, vars)
}

/// An MLP 784-256-128-10: widths divisible by 32 (no q8_0 padding but fc1's).
fn mlp_256_128(seed: u64) -> Box<dyn joulebench::model::Model> {
    let vars = SeededVars::new(seed);
    ModelKind::Mlp
        .build(
            vars.builder(DType::F32, &Device::Cpu),
            10,
            &ModelSize::Mlp {
                hidden: vec![256, 128],
            },
        )
        .unwrap()
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
            structure: prune::Structure::Unstructured,
            block: 1,
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
            phases: None,
            batch: None,
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
    // Widths divisible by 32: no padding, the pure q8_0 ratio (4 * 32 / 34 = 3.76).
    let m = mlp_256_128(5);
    let q = m
        .quantized(joulebench::config::QuantType::Q8_0)
        .unwrap()
        .unwrap();
    let ratio_no_pad = {
        // fc2 (128x256) and fc3 (10x128) have no padding; fc1 (256x784) pads 784 -> 800.
        q.bytes.f32 as f64 / q.bytes.quantized as f64
    };
    assert!((3.6..=3.8).contains(&ratio_no_pad), "{ratio_no_pad}");
    let mut rng = joulebench::util::rng::Rng::new(11);
    let xs: Vec<f32> = (0..8 * 784).map(|_| rng.next_f64() as f32).collect();
    let x = Tensor::from_vec(xs, (8, 784), &Device::Cpu).unwrap();
    let a = m.forward(&x).unwrap();
    let b = q.model.forward(&x).unwrap();
    let err = common::max_abs_diff(&a, &b);
    let mag = common::max_abs(&a);
    assert!(
        err < 0.02 * mag.max(1e-3),
        "q8_0 logits differ by {err} (magnitude {mag})"
    );
    // Predictions agree wherever the f32 top-2 margin exceeds the quantization error
    // (an untrained model has near-ties that any rounding may flip).
    let av: Vec<Vec<f32>> = a.to_vec2().unwrap();
    let bm: Vec<u32> = b.argmax(1).unwrap().to_vec1().unwrap();
    for (row, pred) in av.iter().zip(&bm) {
        let mut sorted = row.clone();
        sorted.sort_by(|x, y| y.total_cmp(x));
        let best = row.iter().position(|v| *v == sorted[0]).unwrap() as u32;
        if sorted[0] - sorted[1] > 2.0 * err {
            assert_eq!(best, *pred, "confident prediction changed");
        }
    }
}

#[test]
fn transformer_quantizes_projections_mlp_and_head_within_quantization_error() {
    let x = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 3, 60, 11, 0, 4, 8]], &Device::Cpu).unwrap();
    for tied in [true, false] {
        let vars = SeededVars::new(8);
        // d = 64 and a vocabulary of 64: every row is whole q8_0 blocks.
        let m = ModelKind::CharTransformer
            .build(
                vars.builder(DType::F32, &Device::Cpu),
                64,
                &ModelSize::Transformer {
                    d_model: 64,
                    layers: 2,
                    heads: 4,
                    context: 16,
                    tied,
                    attention: joulebench::config::Attention::Full,
                },
            )
            .unwrap();
        let q = m
            .quantized(joulebench::config::QuantType::Q8_0)
            .unwrap()
            .expect("the transformer supports quantization");
        // Per layer: qkv 3d^2, proj d^2, fc1 4d^2, fc2 4d^2; plus the head d V.
        let weights = 2 * 12 * 64 * 64 + 64 * 64;
        assert_eq!(q.bytes.f32, weights as u64 * 4);
        let ratio = q.bytes.f32 as f64 / q.bytes.quantized as f64;
        assert!((ratio - 4.0 * 32.0 / 34.0).abs() < 1e-9, "{ratio}");
        let a = m.forward(&x).unwrap();
        let b = q.model.forward(&x).unwrap();
        assert_eq!(a.dims(), b.dims());
        let err = common::max_abs_diff(&a, &b);
        let mag = common::max_abs(&a);
        assert!(
            err < 0.03 * mag.max(1e-3),
            "tied={tied}: q8_0 logits differ by {err} (magnitude {mag})"
        );
        assert_eq!(q.model.generative(), Some(16));
    }
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

fn forward(kind: ModelKind, vars: &SeededVars, size: &ModelSize, x: &Tensor) -> Tensor {
    kind.build(vars.builder(DType::F32, &Device::Cpu), 10, size)
        .unwrap()
        .forward(x)
        .unwrap()
}

#[test]
fn structured_mlp_removing_units_with_zero_outgoing_weights_leaves_outputs_unchanged() {
    use joulebench::technique::structured;
    let size = ModelSize::Mlp { hidden: vec![8, 6] };
    let vars = SeededVars::new(2);
    let x = Tensor::rand(0f32, 1.0, (4, 784), &Device::Cpu).unwrap();
    let _ = forward(ModelKind::Mlp, &vars, &size, &x);
    // Zero the outgoing weights of hidden-1 units 1 and 4 (fc2 columns) and hidden-2 unit 0 (fc3 column).
    let zero_cols = |name: &str, cols: &[usize]| {
        let w = vars.get(name).unwrap();
        let mut v: Vec<Vec<f32>> = w.to_vec2().unwrap();
        for row in &mut v {
            for &c in cols {
                row[c] = 0.0;
            }
        }
        vars.insert(name, &Tensor::new(v, &Device::Cpu).unwrap())
            .unwrap();
    };
    zero_cols("fc2.weight", &[1, 4]);
    zero_cols("fc3.weight", &[0]);
    let before = forward(ModelKind::Mlp, &vars, &size, &x);
    let keep = vec![vec![0, 2, 3, 5, 6, 7], vec![1, 2, 3, 4, 5]];
    let (small, new_size) = structured::shrink(&vars, ModelKind::Mlp, &size, &keep, 9).unwrap();
    assert_eq!(new_size, ModelSize::Mlp { hidden: vec![6, 5] });
    let after = forward(ModelKind::Mlp, &small, &new_size, &x);
    assert!(
        common::max_abs_diff(&before, &after) < 1e-5,
        "outputs changed by {}",
        common::max_abs_diff(&before, &after)
    );
    assert_eq!(
        small.parameter_count(),
        (784 * 6 + 6) + (6 * 5 + 5) + (5 * 10 + 10)
    );
    // The plan keeps the highest-L1 units: shrink unit 3 of hidden-1 to tiny weights.
    let w = vars.get("fc1.weight").unwrap();
    let mut v: Vec<Vec<f32>> = w.to_vec2().unwrap();
    v[3].iter_mut().for_each(|x| *x *= 1e-3);
    vars.insert("fc1.weight", &Tensor::new(v, &Device::Cpu).unwrap())
        .unwrap();
    let plan = structured::plan(&vars, ModelKind::Mlp, &size, 0.125).unwrap();
    assert_eq!(plan[0].len(), 7);
    assert!(!plan[0].contains(&3));
}

#[test]
fn structured_cnn_removing_channels_with_zero_outgoing_weights_leaves_outputs_unchanged() {
    use joulebench::technique::structured;
    let size = ModelSize::Cnn {
        channels: vec![4, 6],
        fc_width: 5,
    };
    let vars = SeededVars::new(3);
    let x = Tensor::rand(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
    let _ = forward(ModelKind::Cnn, &vars, &size, &x);
    // conv1 channel 2 feeds nothing (conv2 input channel 2 zeroed); conv2 channel 5 feeds nothing (its fc1 columns zeroed).
    let c2 = vars.get("conv2.weight").unwrap();
    let mask: Vec<f32> = (0..4).map(|c| if c == 2 { 0.0 } else { 1.0 }).collect();
    let m = Tensor::new(mask, &Device::Cpu)
        .unwrap()
        .reshape((1, 4, 1, 1))
        .unwrap();
    vars.insert("conv2.weight", &c2.broadcast_mul(&m).unwrap())
        .unwrap();
    let fc1 = vars.get("fc1.weight").unwrap();
    let mut v: Vec<Vec<f32>> = fc1.to_vec2().unwrap();
    for row in &mut v {
        row[5 * 49..6 * 49].fill(0.0);
    }
    vars.insert("fc1.weight", &Tensor::new(v, &Device::Cpu).unwrap())
        .unwrap();
    let before = forward(ModelKind::Cnn, &vars, &size, &x);
    let keep = vec![vec![0, 1, 3], vec![0, 1, 2, 3, 4]];
    let (small, new_size) = structured::shrink(&vars, ModelKind::Cnn, &size, &keep, 4).unwrap();
    assert_eq!(
        new_size,
        ModelSize::Cnn {
            channels: vec![3, 5],
            fc_width: 5
        }
    );
    let after = forward(ModelKind::Cnn, &small, &new_size, &x);
    assert!(
        common::max_abs_diff(&before, &after) < 1e-4,
        "{}",
        common::max_abs_diff(&before, &after)
    );
    assert_eq!(
        small.parameter_count(),
        (3 * 9 + 3) + (5 * 3 * 9 + 5) + (5 * 49 * 5 + 5) + (5 * 10 + 10)
    );
}

#[test]
fn structured_and_distillation_trials_run_end_to_end_with_phase_energy() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let suite = dir.path().join("s.toml");
    std::fs::write(
        &suite,
        r#"name = "s"
[defaults]
seeds = [1]
epochs = 2
batch_size = 32
max_eval_samples = 200
[[workload]]
name = "mlp"
hidden = [64]
[[variant]]
name = "structured"
prune_sparsity = 0.5
prune_structure = "structured"
prune_after_epochs = 1
save_weights = true
[[variant]]
name = "distilled"
distill_teacher = "cnn"
teacher_epochs = 1
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .args(["run"])
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(&data)
        .args(["--meter", "fake", "--idle-seconds", "0", "--no-report"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = std::fs::read_dir(out.join("s"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (mut recs, _, _) =
        joulebench::runfolder::store::read_records(&run.join("trials.jsonl")).unwrap();
    // The file holds trials in run order (shuffled within a seed): plan order here.
    recs.sort_by_key(|r| r.trial_index);
    let s = recs[0].structured.as_ref().expect("structured record");
    assert_eq!(s.size_after, ModelSize::Mlp { hidden: vec![32] });
    assert_eq!(s.parameters_after, 784 * 32 + 32 + 32 * 10 + 10);
    assert!(s.macs_after * 2 <= s.macs_before + 100);
    assert!(s.pretrain_joules.0 > 0.0 && s.finetune_joules.0 > 0.0);
    assert_eq!(recs[0].epochs.len(), 2);
    let w = recs[0].weights_file.as_ref().unwrap();
    assert!(run.join(w).is_file(), "{w}");
    let d = recs[1].distillation.as_ref().expect("distillation record");
    assert!(d.teacher_training.as_ref().unwrap().joules.0 > 0.0);
    assert!(d.teacher_inference.joules.0 > 0.0);
    assert!(d.student_only_joules.0 > 0.0);
    assert!(d.teacher_test_accuracy.unwrap() > 0.3);
    assert!(recs[1].test.as_ref().unwrap().accuracy > 0.3);
}

#[test]
fn int8_matches_f32_within_quantization_error_on_ragged_shapes() {
    use joulebench::ops::int8::Int8Matrix;
    let mut rng = joulebench::util::rng::Rng::new(4);
    for (rows, cols, n) in [(10, 784, 37), (256, 128, 64), (3, 5, 1), (130, 70, 9)] {
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| rng.next_f64() as f32 - 0.5)
            .collect();
        let x: Vec<f32> = (0..n * cols)
            .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
            .collect();
        let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.1).collect();
        let m = Int8Matrix::from_f32(&w, rows, cols, Some(bias.clone()));
        let y = m.forward(&x, n);
        // Integer dot products: the fast and the portable kernel agree exactly.
        assert_eq!(y, m.forward_portable(&x, n));
        for i in 0..n {
            let xmax = x[i * cols..(i + 1) * cols]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            for o in 0..rows {
                let wmax = w[o * cols..(o + 1) * cols]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()));
                let exact: f32 = bias[o]
                    + (0..cols)
                        .map(|k| w[o * cols + k] * x[i * cols + k])
                        .sum::<f32>();
                // Each product's error is at most half a step of either factor.
                let bound = cols as f32 * (xmax * wmax) * (1.0 / 127.0) * 1.01;
                let got = y[i * rows + o];
                assert!(
                    (got - exact).abs() <= bound,
                    "{rows}x{cols} [{i},{o}]: {got} vs {exact} (bound {bound})"
                );
            }
        }
        assert_eq!(m.bytes(), (rows * cols.div_ceil(64) * 64 + 4 * rows) as u64);
    }
    // The same model quantized as int8 and as q8_0: both near f32.
    let m = mlp_256_128(5);
    let xs: Vec<f32> = (0..64 * 784).map(|_| rng.next_f64() as f32).collect();
    let x = Tensor::from_vec(xs, (64, 784), &Device::Cpu).unwrap();
    let a = m.forward(&x).unwrap();
    let mag = common::max_abs(&a);
    for q in [
        joulebench::config::QuantType::Int8,
        joulebench::config::QuantType::Q8_0,
    ] {
        let qm = m.quantized(q).unwrap().unwrap();
        let err = common::max_abs_diff(&a, &qm.model.forward(&x).unwrap());
        assert!(
            err < 0.03 * mag.max(1e-3),
            "{q}: logits differ by {err} (magnitude {mag})"
        );
    }
    println!("int8 kernel: {}", joulebench::ops::int8::kernel());
}
