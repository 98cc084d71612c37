//! Attention variants against naive loops, the model with a window of the
//! whole context against full attention, FLOP and memory counts that grow
//! as each variant should, and the `attention`/`contexts` suite keys.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use joulebench::config::{Attention, ModelSize};
use joulebench::model::attention::{attend, local, macs_per_sequence};
use joulebench::model::transformer::{CharTransformer, TransformerConfig};
use joulebench::model::{Model, memory};
use joulebench::suite::Suite;
use joulebench::train::init::SeededVars;
use std::path::Path;

/// Deterministic pseudo-random (B, H, T, hd) values in about [-1.5, 1.5].
fn tensor(seed: u64, shape: (usize, usize, usize, usize), dev: &Device) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as f64 / (1u64 << 31) as f64 * 3.0 - 1.5) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, dev).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<Vec<Vec<f32>>>> {
    (0..t.dim(0).unwrap())
        .map(|i| t.i(i).unwrap().to_vec3::<f32>().unwrap())
        .collect()
}

/// The textbook definitions, one query at a time (index loops on purpose).
#[allow(clippy::needless_range_loop)]
fn naive(q: &Tensor, k: &Tensor, v: &Tensor, kind: Attention) -> Vec<f32> {
    let (q, k, v) = (rows(q), rows(k), rows(v));
    let mut out = Vec::new();
    for b in 0..q.len() {
        for h in 0..q[b].len() {
            let (qh, kh, vh) = (&q[b][h], &k[b][h], &v[b][h]);
            let (t, hd) = (qh.len(), qh[0].len());
            for i in 0..t {
                let lo = match kind {
                    Attention::Local { window } => (i + 1).saturating_sub(window),
                    _ => 0,
                };
                let weights: Vec<f64> = (lo..=i)
                    .map(|j| {
                        let dot = |f: &dyn Fn(f32) -> f64| -> f64 {
                            (0..hd).map(|c| f(qh[i][c]) * f(kh[j][c])).sum()
                        };
                        match kind {
                            Attention::Linear => {
                                let phi = |x: f32| {
                                    let x = x as f64;
                                    if x > 0.0 { x + 1.0 } else { x.exp() }
                                };
                                (0..hd).map(|c| phi(qh[i][c]) * phi(kh[j][c])).sum()
                            }
                            _ => (dot(&|x| x as f64) / (hd as f64).sqrt()).exp(),
                        }
                    })
                    .collect();
                let total: f64 = weights.iter().sum();
                for c in 0..hd {
                    let y: f64 = (lo..=i)
                        .zip(&weights)
                        .map(|(j, w)| w * vh[j][c] as f64)
                        .sum();
                    out.push((y / total) as f32);
                }
            }
        }
    }
    out
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: worst relative error {worst} > {tol}");
}

test_device!(
    variants_match_naive_loops,
    variants_match_naive_loops_on_cpu,
    variants_match_naive_loops_on_cuda
);

fn variants_match_naive_loops(dev: &Device) {
    // T = 13 is not a multiple of the windows or of the linear chunk used,
    // so the padded tail is exercised; T = 150 spans three linear chunks.
    for (t, seed) in [(13usize, 1u64), (150, 2)] {
        let shape = (2, 3, t, 4);
        let (q, k, v) = (
            tensor(seed, shape, dev),
            tensor(seed + 10, shape, dev),
            tensor(seed + 20, shape, dev),
        );
        let mut kinds = vec![Attention::Full, Attention::Linear];
        for w in [1, 2, 5, 12, 13, 40, 1000] {
            kinds.push(Attention::Local { window: w });
        }
        for kind in kinds {
            let got = flat(&attend(kind, &q, &k, &v).unwrap());
            let want = naive(&q, &k, &v, kind);
            assert_close(&got, &want, 1e-4, &format!("{kind:?} at T={t}"));
        }
        // Window >= T is full attention exactly; the blocked kernel agrees
        // with it when forced at w = T - 1 ... 1 against the naive loop above.
        let full = flat(&attend(Attention::Full, &q, &k, &v).unwrap());
        let wide = flat(&attend(Attention::Local { window: t }, &q, &k, &v).unwrap());
        assert_eq!(full, wide, "local with window = T must equal full");
        // Window 1: each token sees itself only, so the output is v.
        let one = flat(&local(&q, &k, &v, 1).unwrap());
        assert_close(&one, &flat(&v), 1e-6, "window 1");
    }
}

#[test]
fn gradients_flow_through_every_variant() {
    let dev = Device::Cpu;
    let shape = (1, 2, 70, 4);
    for kind in [
        Attention::Full,
        Attention::Local { window: 8 },
        Attention::Linear,
    ] {
        let q = Var::from_tensor(&tensor(3, shape, &dev)).unwrap();
        let k = Var::from_tensor(&tensor(4, shape, &dev)).unwrap();
        let v = Var::from_tensor(&tensor(5, shape, &dev)).unwrap();
        let y = attend(kind, q.as_tensor(), k.as_tensor(), v.as_tensor()).unwrap();
        // The first output row depends on token 0 only: its gradient must
        // not reach any later key.
        let loss = y.i((.., .., 0, ..)).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gv = g.get(&v).expect("a gradient for v");
        let later = common::max_abs(&gv.i((.., .., 1.., ..)).unwrap());
        assert_eq!(later, 0.0, "{kind:?}: output 0 reached later values: {gv}");
        let whole = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for (name, var) in [("q", &q), ("k", &k), ("v", &v)] {
            let gx = whole.get(var).unwrap();
            let m = common::max_abs(gx);
            assert!(m.is_finite() && m > 0.0, "{kind:?}: d/d{name} = {m}");
        }
    }
}

fn transformer(attention: Attention, context: usize) -> (CharTransformer, TransformerConfig) {
    let cfg = TransformerConfig {
        vocab: 11,
        d_model: 16,
        layers: 2,
        heads: 4,
        context,
        tied: false,
        attention,
    };
    let vars = SeededVars::new(9);
    let m = CharTransformer::new(vars.builder(DType::F32, &Device::Cpu), cfg.clone()).unwrap();
    // `vars` drops here, but the model holds its tensors.
    (m, cfg)
}

#[test]
fn model_with_a_window_of_the_whole_context_equals_full_attention() {
    let x = Tensor::new(&[[1u32, 2, 3, 4, 5, 6, 7, 8, 9, 10]], &Device::Cpu).unwrap();
    let (full, _) = transformer(Attention::Full, 10);
    let (wide, _) = transformer(Attention::Local { window: 10 }, 10);
    let (narrow, _) = transformer(Attention::Local { window: 3 }, 10);
    let (lin, _) = transformer(Attention::Linear, 10);
    let f = full.forward(&x).unwrap();
    assert_eq!(common::max_abs_diff(&f, &wide.forward(&x).unwrap()), 0.0);
    // Same weights, other attention: the first two positions see the same
    // tokens under a window of 3, later ones do not.
    let n = narrow.forward(&x).unwrap();
    let early = common::max_abs_diff(&f.i((.., 0..3, ..)).unwrap(), &n.i((.., 0..3, ..)).unwrap());
    assert!(early < 1e-5, "window 3 changed positions 0..3 by {early}");
    let late = common::max_abs_diff(&f.i((.., 5.., ..)).unwrap(), &n.i((.., 5.., ..)).unwrap());
    assert!(late > 1e-5, "window 3 must change later positions");
    // Linear attention stays causal in the model.
    let y = Tensor::new(&[[1u32, 2, 3, 4, 5, 6, 0, 0, 0, 0]], &Device::Cpu).unwrap();
    let (a, b) = (lin.forward(&x).unwrap(), lin.forward(&y).unwrap());
    let moved = common::max_abs_diff(&a.i((.., 0..6, ..)).unwrap(), &b.i((.., 0..6, ..)).unwrap());
    assert!(moved < 1e-5, "linear attention leaked the future: {moved}");
}

#[test]
fn flops_and_memory_grow_as_each_variant_should() {
    let (d, hd) = (64u64, 16u64);
    let full = |t| macs_per_sequence(Attention::Full, t, d, hd);
    let local = |t| macs_per_sequence(Attention::Local { window: 64 }, t, d, hd);
    let linear = |t| macs_per_sequence(Attention::Linear, t, d, hd);
    // Hand counts: full 2 T^2 d; local 4 w d per token on whole blocks.
    assert_eq!(full(100), 2 * 100 * 100 * 64);
    assert_eq!(local(100), 128 * 4 * 64 * 64);
    assert_eq!(local(64), full(64), "a window of T is full attention");
    // Doubling T: full x4, local and linear x2 (once T spans many blocks).
    assert_eq!(full(2048), 4 * full(1024));
    assert_eq!(local(2048), 2 * local(1024));
    let r = linear(2048) as f64 / linear(1024) as f64;
    assert!((1.9..2.2).contains(&r), "linear grew {r}x");
    let (m, cfg) = transformer(Attention::Local { window: 4 }, 64);
    assert_eq!(m.macs_per_sample(), cfg.macs_per_sequence());
    // Memory: per-sample activations of full attention grow with T^2, the
    // others with T.
    let per_sample = |attention, context| {
        let mut size = joulebench::config::ModelKind::CharTransformer.default_size();
        if let ModelSize::Transformer {
            context: c,
            attention: a,
            ..
        } = &mut size
        {
            *c = context;
            *a = attention;
        }
        let suite = Suite::parse(
            Path::new("m.toml"),
            "name = \"m\"\n[[workload]]\nname = \"t\"\nmodel = \"char-transformer\"\n",
        )
        .unwrap();
        let mut cfg = suite.plan().unwrap().trials[0].config.clone();
        cfg.size = size;
        memory::estimate(&cfg, 100).activations_per_sample
    };
    for kind in [Attention::Local { window: 64 }, Attention::Linear] {
        let r = per_sample(kind, 8192) as f64 / per_sample(kind, 4096) as f64;
        assert!(r < 2.05, "{kind:?}: memory grew {r}x for 2x context");
    }
    let r = per_sample(Attention::Full, 8192) as f64 / per_sample(Attention::Full, 4096) as f64;
    assert!(r > 3.5, "full attention memory grew only {r}x");
}

const SWEEP: &str = r#"
name = "att"
[defaults]
max_train_samples = 64
[[workload]]
name = "gpt"
model = "char-transformer"
[[variant]]
name = "full"
contexts = [32, 64]
[[variant]]
name = "local"
attention = "local"
attention_window = 16
contexts = [32, 64]
"#;

fn parse(text: &str) -> Result<Suite, String> {
    Suite::parse(Path::new("exp/att.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn contexts_expand_per_variant_and_bad_attention_keys_are_refused() {
    let plan = parse(SWEEP).unwrap().plan().unwrap();
    let names: Vec<_> = plan.trials.iter().map(|t| t.key.variant.as_str()).collect();
    assert_eq!(names, ["full-t32", "full-t64", "local-t32", "local-t64"]);
    let ModelSize::Transformer {
        context, attention, ..
    } = &plan.trials[3].config.size
    else {
        panic!()
    };
    assert_eq!(
        (*context, *attention),
        (64, Attention::Local { window: 16 })
    );
    let ModelSize::Transformer { attention, .. } = &plan.trials[0].config.size else {
        panic!()
    };
    assert_eq!(*attention, Attention::Full);
    // Full attention leaves the record's config (and so the trial id) as before.
    let json = serde_json::to_string(&plan.trials[0].config).unwrap();
    assert!(!json.contains("attention"), "{json}");

    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "local\"\nattention_window = 16",
            "[[workload]]\nname = \"m\"\nmodel = \"mlp\"\n[[variant]]\nname = \"v\"\nattention = \"",
            &["`attention` applies to", "workload `m` is a mlp"],
        ),
        (
            "local\"",
            "[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\n[[variant]]\nname = \"v\"\nattention = \"",
            &["attention_window", "local attention needs attention_window"],
        ),
        (
            "linear\"\nattention_window = 8",
            "[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\n[[variant]]\nname = \"v\"\nattention = \"",
            &["attention_window", "8", "local\" only", "linear"],
        ),
        (
            "sparse\"",
            "[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\n[[variant]]\nname = \"v\"\nattention = \"",
            &["sparse", "full, local, linear"],
        ),
        (
            "[64, 0]",
            "[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\n[[variant]]\nname = \"v\"\ncontexts = ",
            &["variant[v].contexts", "0", "1..=65536"],
        ),
        (
            "[64]",
            "[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\ncontexts = ",
            &["workload[g].contexts", "set it on a variant"],
        ),
    ];
    for (tail, head, wants) in cases {
        let text = format!("name = \"x\"\n{head}{tail}\n");
        let e = parse(&text).and_then(|s| s.plan().map(|_| ()).map_err(|e| e.to_string()));
        let e = e.expect_err(&text);
        assert!(e.contains("exp/att.toml"), "{e}");
        for w in wants {
            assert!(e.contains(w), "`{w}` missing from: {e}");
        }
    }
    let both = "name = \"x\"\n[[workload]]\nname = \"g\"\nmodel = \"char-transformer\"\n[[variant]]\nname = \"v\"\ncontext = 32\ncontexts = [64]\n";
    let e = parse(both).unwrap_err();
    assert!(e.contains("either context or contexts"), "{e}");
}
