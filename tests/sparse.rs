//! Sparse execution: the CSR and BSR kernels against a dense product on
//! ragged shapes, their storage counts, the MLP's sparse copy against the
//! dense masked model, and a pruned trial recording both inference windows.

mod common;

use candle_core::{DType, Device, Tensor};
use joulebench::config::SparseFormat;
use joulebench::model::{ModelKind, ModelSize};
use joulebench::ops::sparse::SparseMatrix;
use joulebench::train::init::SeededVars;

/// A (rows x cols) matrix with about `density` of its entries non-zero.
fn matrix(rows: usize, cols: usize, density: f64, seed: u64) -> Vec<f32> {
    let mut rng = joulebench::util::rng::Rng::new(seed);
    (0..rows * cols)
        .map(|_| {
            let keep = rng.next_f64() < density;
            let v = rng.next_f64() as f32 * 2.0 - 1.0;
            if keep { v } else { 0.0 }
        })
        .collect()
}

fn dense_product(
    w: &[f32],
    rows: usize,
    cols: usize,
    bias: &[f32],
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; n * rows];
    for i in 0..n {
        for r in 0..rows {
            let mut acc = bias[r] as f64;
            for k in 0..cols {
                acc += w[r * cols + k] as f64 * x[i * cols + k] as f64;
            }
            y[i * rows + r] = acc as f32;
        }
    }
    y
}

#[test]
fn csr_and_bsr_match_the_dense_product_on_ragged_shapes() {
    for (rows, cols, n) in [(10, 784, 37), (33, 17, 16), (1, 5, 1), (64, 64, 100)] {
        for density in [0.0, 0.02, 0.1, 0.5, 1.0] {
            let w = matrix(rows, cols, density, (rows * cols) as u64);
            let x = matrix(n, cols, 1.0, 7);
            let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.01).collect();
            let want = dense_product(&w, rows, cols, &bias, &x, n);
            let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (format, block) in [
                (SparseFormat::Csr, 1),
                (SparseFormat::Bsr, 1),
                (SparseFormat::Bsr, 2),
                (SparseFormat::Bsr, 4),
                (SparseFormat::Bsr, 5),
            ] {
                let m = SparseMatrix::from_dense(&w, rows, cols, Some(bias.clone()), format, block);
                let got = m.forward(&x, n);
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err <= 1e-5 * scale,
                    "{format} b{block} {rows}x{cols} n={n} density {density}: error {err} (scale {scale})"
                );
                let st = m.stats();
                let nnz = w.iter().filter(|v| **v != 0.0).count() as u64;
                assert_eq!(st.nonzeros, nnz);
                assert_eq!(st.weights, (rows * cols) as u64);
                assert_eq!(st.dense_bytes, 4 * (rows * cols) as u64);
                if format == SparseFormat::Csr {
                    // values + column indices + row pointers, 4 bytes each.
                    assert_eq!(st.stored, nnz);
                    assert_eq!(st.bytes, 4 * (2 * nnz + rows as u64 + 1));
                } else {
                    assert!(st.stored >= nnz && st.stored.is_multiple_of((block * block) as u64));
                }
            }
        }
    }
}

#[test]
fn sparse_mlp_cnn_and_transformer_equal_the_dense_masked_models() {
    for (size, layers) in [
        (
            ModelSize::Transformer {
                d_model: 32,
                layers: 2,
                heads: 4,
                context: 16,
                tied: true,
                attention: joulebench::config::Attention::Full,
            },
            9,
        ),
        (
            ModelSize::Mlp {
                hidden: vec![64, 32],
            },
            3,
        ),
        (
            ModelSize::Cnn {
                channels: vec![8, 16],
                fc_width: 32,
            },
            4,
        ),
    ] {
        sparse_model_equals_dense(size, layers);
    }
}

fn sparse_model_equals_dense(size: ModelSize, layers: usize) {
    let kind = match size {
        ModelSize::Mlp { .. } => ModelKind::Mlp,
        ModelSize::Transformer { .. } => ModelKind::CharTransformer,
        _ => ModelKind::Cnn,
    };
    let vars = SeededVars::new(3);
    let m = kind
        .build(vars.builder(DType::F32, &Device::Cpu), 10, &size)
        .unwrap();
    // Zero 90% of every weight matrix, as magnitude pruning would.
    for (name, var) in vars.var_map().data().lock().unwrap().iter() {
        if name.ends_with(".weight") {
            let t = var.as_tensor();
            let rows = t.dims()[0];
            let mask = matrix(rows, t.elem_count() / rows, 0.1, 5);
            let mask: Vec<f32> = mask
                .iter()
                .map(|v| if *v != 0.0 { 1.0 } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, t.dims(), &Device::Cpu).unwrap();
            var.set(&(t * mask).unwrap()).unwrap();
        }
    }
    let x = if kind == ModelKind::CharTransformer {
        let ids: Vec<u32> = (0..48).map(|i| (i * 7 % 10) as u32).collect();
        Tensor::from_vec(ids, (3, 16), &Device::Cpu).unwrap()
    } else {
        Tensor::from_vec(matrix(50, 784, 1.0, 9), (50, 784), &Device::Cpu).unwrap()
    };
    let dense = m.forward(&x).unwrap();
    for (format, block) in [(SparseFormat::Csr, 1), (SparseFormat::Bsr, 4)] {
        let s = m
            .sparse(joulebench::config::SparseConfig { format, block })
            .unwrap()
            .unwrap();
        assert_eq!((s.layers, s.dense_layers), (layers, 0));
        let sparsity = 1.0 - s.stats.nonzeros as f64 / s.stats.weights as f64;
        assert!((0.85..0.95).contains(&sparsity), "{sparsity}");
        let y = s.model.forward(&x).unwrap();
        let rel = common::max_abs_diff(&dense, &y) / common::max_abs(&dense);
        assert!(rel <= 1e-5, "{format}: relative difference {rel}");
    }
}

const SUITE: &str = r#"
name = "s"
[defaults]
seeds = [1]
epochs = 2
batch_size = 32
max_train_samples = 600
max_eval_samples = 300
eval_batch_size = 100
[[workload]]
name = "mlp"
model = "mlp"
hidden = [64]
[[variant]]
name = "p90"
prune_sparsity = 0.9
sparse_inference = "bsr"
sparse_block = 2
"#;

#[test]
fn pruned_trial_records_dense_and_sparse_inference_windows() {
    let env = common::SuiteEnv::new(SUITE);
    let o = env.run_cmd("0").arg("--no-report").output().unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    let run = joulebench::analysis::Run::load(
        &std::fs::read_dir(env.path("out/s"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let r = &run.records[0];
    let s = r.sparse.as_ref().expect("a sparse record");
    assert_eq!(s.error, None);
    assert_eq!((s.format.as_str(), s.block), ("bsr", 2));
    assert!(
        (0.85..0.95).contains(&s.sparsity),
        "sparsity {}",
        s.sparsity
    );
    assert!(s.max_rel_diff <= 1e-5, "max_rel_diff {}", s.max_rel_diff);
    let dense_acc = r.test.as_ref().unwrap().accuracy;
    let sparse_acc = s.test.as_ref().unwrap().accuracy;
    assert!((dense_acc - sparse_acc).abs() <= 1.0 / 300.0 + 1e-12);
    let (si, di) = (s.inference.as_ref().unwrap(), r.inference.as_ref().unwrap());
    assert_eq!((si.samples, di.samples), (300, 300));
    assert!(si.joules_per_1k.0 > 0.0 && di.joules_per_1k.0 > 0.0);
    assert!(s.stats.bytes < s.stats.dense_bytes);

    // sparse_block belongs to BSR.
    let bad = common::SuiteEnv::new(&SUITE.replace("\"bsr\"", "\"csr\""));
    let o = bad.bin().args(["validate", "s.toml"]).output().unwrap();
    let e = common::text(&o);
    assert!(
        !o.status.success() && e.contains("sparse_block") && e.contains("bsr"),
        "{e}"
    );
}
