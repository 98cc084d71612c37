//! Reference workloads: FLOP counts against hand counts, separable-block
//! shapes and parameters, the transformer's causal mask and learning, and
//! the corpus loader's errors.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use joulebench::data::text::Corpus;
use joulebench::model::transformer::{CharTransformer, TransformerConfig, generate};
use joulebench::model::{Model, ModelKind, ModelSize};
use joulebench::train::init::SeededVars;
use std::path::Path;

fn build(kind: ModelKind, size: ModelSize, classes: usize) -> (Box<dyn Model>, SeededVars) {
    let vars = SeededVars::new(1);
    let m = kind
        .build(vars.builder(DType::F32, &Device::Cpu), classes, &size)
        .unwrap();
    (m, vars)
}

#[test]
fn flop_counts_equal_hand_counts_for_tiny_configurations() {
    // MLP 784-4-10: 784*4 + 4*10 MACs.
    let (m, v) = build(ModelKind::Mlp, ModelSize::Mlp { hidden: vec![4] }, 10);
    assert_eq!(m.macs_per_sample(), 784 * 4 + 4 * 10);
    assert_eq!(v.parameter_count(), 784 * 4 + 4 + 4 * 10 + 10);
    // CNN [2, 3], fc 5: conv1 28*28*2*9, conv2 14*14*3*2*9, fc 3*49*5 + 5*10.
    let (m, _) = build(
        ModelKind::Cnn,
        ModelSize::Cnn {
            channels: vec![2, 3],
            fc_width: 5,
        },
        10,
    );
    assert_eq!(
        m.macs_per_sample(),
        28 * 28 * 2 * 9 + 14 * 14 * 3 * 2 * 9 + 3 * 49 * 5 + 5 * 10
    );
    // Standard twin [2, 4, 8]: stem 28*28*2*9; block1 stride 2 -> 14x14: 14*14*2*4*9;
    // block2 stride 2 -> 7x7: 7*7*4*8*9; head 8*10.
    let (m, _) = build(
        ModelKind::StandardCnn,
        ModelSize::MobileNet {
            channels: vec![2, 4, 8],
        },
        10,
    );
    assert_eq!(
        m.macs_per_sample(),
        28 * 28 * 2 * 9 + 14 * 14 * 2 * 4 * 9 + 7 * 7 * 4 * 8 * 9 + 80
    );
    // Separable: depthwise H W Cin 9 + pointwise H W Cin Cout.
    let (m, _) = build(
        ModelKind::SeparableCnn,
        ModelSize::MobileNet {
            channels: vec![2, 4, 8],
        },
        10,
    );
    assert_eq!(
        m.macs_per_sample(),
        28 * 28 * 2 * 9
            + (14 * 14 * 2 * 9 + 14 * 14 * 2 * 4)
            + (7 * 7 * 4 * 9 + 7 * 7 * 4 * 8)
            + 80
    );
    // Transformer d=8, 1 layer, T=4, V=5: per token 12*64 + 2*4*8 = 832, head 40 -> 872; x T.
    let cfg = TransformerConfig {
        vocab: 5,
        d_model: 8,
        layers: 1,
        heads: 2,
        context: 4,
        tied: true,
        attention: joulebench::config::Attention::Full,
    };
    assert_eq!(cfg.macs_per_token(), 12 * 64 + 2 * 4 * 8 + 8 * 5);
    let (m, _) = build(
        ModelKind::CharTransformer,
        ModelSize::Transformer {
            d_model: 8,
            layers: 1,
            heads: 2,
            context: 4,
            tied: true,
            attention: joulebench::config::Attention::Full,
        },
        5,
    );
    assert_eq!(m.macs_per_sample(), 4 * 872);
    assert_eq!(m.macs_per_inference_unit(), 872);
}

#[test]
fn separable_blocks_have_the_expected_shapes_parameters_and_cost_ratio() {
    let widths = vec![32, 64, 128, 128];
    let (sep, vs) = build(
        ModelKind::SeparableCnn,
        ModelSize::MobileNet {
            channels: widths.clone(),
        },
        10,
    );
    let (std, vt) = build(
        ModelKind::StandardCnn,
        ModelSize::MobileNet {
            channels: widths.clone(),
        },
        10,
    );
    let x = Tensor::rand(0f32, 1.0, (3, 1, 28, 28), &Device::Cpu).unwrap();
    assert_eq!(sep.forward(&x).unwrap().dims(), &[3, 10]);
    assert_eq!(std.forward(&x).unwrap().dims(), &[3, 10]);
    let shapes: std::collections::HashMap<String, Vec<usize>> = vs
        .var_map()
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    assert_eq!(
        shapes["block1.dw.weight"],
        vec![32, 1, 3, 3],
        "depthwise: one 3x3 filter per channel"
    );
    assert_eq!(shapes["block1.pw.weight"], vec![64, 32, 1, 1]);
    // Parameters: stem 1*32*9+32; per block dw cin*9+cin, pw cin*cout+cout (or 9 cin cout + cout); head.
    let stem = 32 * 9 + 32;
    let head = 128 * 10 + 10;
    let sep_blocks: usize = widths
        .windows(2)
        .map(|w| (w[0] * 9 + w[0]) + (w[0] * w[1] + w[1]))
        .sum();
    let std_blocks: usize = widths.windows(2).map(|w| w[0] * w[1] * 9 + w[1]).sum();
    assert_eq!(vs.parameter_count() as usize, stem + sep_blocks + head);
    assert_eq!(vt.parameter_count() as usize, stem + std_blocks + head);
    // Per-block MAC ratio equals 1/N + 1/Dk^2 (block 2: 64 -> 128 at 7x7).
    let std_b = 7 * 7 * 64 * 128 * 9;
    let sep_b = 7 * 7 * 64 * 9 + 7 * 7 * 64 * 128;
    assert!((sep_b as f64 / std_b as f64 - (1.0 / 128.0 + 1.0 / 9.0)).abs() < 1e-12);
    assert!(sep.macs_per_sample() * 5 < std.macs_per_sample());
}

test_device!(
    causal_mask_holds,
    causal_mask_holds_changing_a_later_token_leaves_earlier_logits,
    causal_mask_holds_on_cuda
);

fn causal_mask_holds(dev: &Device) {
    let vars = SeededVars::new(4);
    let cfg = TransformerConfig {
        vocab: 11,
        d_model: 16,
        layers: 2,
        heads: 4,
        context: 8,
        tied: false,
        attention: joulebench::config::Attention::Full,
    };
    let m = CharTransformer::new(vars.builder(DType::F32, dev), cfg).unwrap();
    let a = Tensor::new(&[[1u32, 2, 3, 4, 5, 6, 7, 8]], dev).unwrap();
    let b = Tensor::new(&[[1u32, 2, 3, 4, 5, 9, 10, 0]], dev).unwrap();
    let la = m.forward(&a).unwrap();
    let lb = m.forward(&b).unwrap();
    assert_eq!(la.dims(), &[1, 8, 11]);
    let early = common::max_abs_diff(
        &la.i((.., 0..5, ..)).unwrap(),
        &lb.i((.., 0..5, ..)).unwrap(),
    );
    assert!(early < 1e-5, "positions before the change moved by {early}");
    let late = common::max_abs_diff(&la.i((.., 5, ..)).unwrap(), &lb.i((.., 5, ..)).unwrap());
    assert!(late > 1e-4, "the changed position must change");
    let g = generate(&m, &a.narrow(1, 0, 3).unwrap(), 7, 8).unwrap();
    assert_eq!(g.dims(), &[1, 10]);
}

#[test]
fn corpus_loader_strips_separators_and_missing_corpus_says_how_to_install() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "hello\n%\nworld\n").unwrap();
    std::fs::write(dir.path().join("a.dat"), [0u8, 1, 2]).unwrap();
    let c = Corpus::load(dir.path()).unwrap();
    assert_eq!(c.decode(&c.tokens), "hello\nworld\n");
    let e = Corpus::load(&dir.path().join("none"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("apt-get install fortunes"), "{e}");
    let e = c.splits(64).unwrap_err().to_string();
    assert!(e.contains("too little for context 64"), "{e}");
    // Fixed split and window layout.
    let text: String = (0..2000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let c = Corpus::from_text(Path::new("mem"), text.as_bytes());
    let s = c.splits(9).unwrap();
    assert_eq!(s.classes, 26);
    assert_eq!(s.train.len(), 1800 / 10);
    assert_eq!(s.train.label_len, 9);
    let joulebench::data::Features::U32(x) = &s.train.features else {
        panic!()
    };
    assert_eq!(&x[..3], &[0, 1, 2]);
    assert_eq!(
        &s.train.labels[..3],
        &[1, 2, 3],
        "labels are the next characters"
    );
}

fn unigram_entropy_and_loss(steps_samples: u64) -> (f64, f64) {
    let dir = joulebench::data::text::resolve_dir(None, None);
    let corpus = Corpus::load(&dir).unwrap();
    let splits = corpus.splits(64).unwrap();
    let joulebench::data::Features::U32(_) = &splits.validation.features else {
        panic!()
    };
    let h = Corpus::unigram_entropy(&splits.validation.labels, splits.classes);
    let text = format!(
        "name = \"t\"\n[defaults]\nseeds = [1]\nbatch_size = 32\nlearning_rate = 3e-3\nmax_train_samples = {steps_samples}\nmax_eval_samples = 200\neval_batch_size = 100\n[[workload]]\nname = \"gpt\"\nmodel = \"char-transformer\"\nd_model = 64\nlayers = 2\nheads = 4\ncontext = 64\ngenerate_tokens = 16\n"
    );
    let spec = joulebench::suite::Suite::parse(Path::new("t.toml"), &text)
        .unwrap()
        .plan()
        .unwrap()
        .trials
        .remove(0);
    let dev = Device::Cpu;
    let train = splits
        .train
        .take(spec.config.max_train_samples)
        .to_device(&dev)
        .unwrap();
    let val = splits.validation.take(Some(200)).to_device(&dev).unwrap();
    let (out, _) = common::train_on(&spec, splits.classes, &train, &val, &val);
    let inf = out.inference.unwrap();
    assert_eq!(inf.unit, "tokens");
    assert_eq!(inf.samples, 8 * 16);
    let test = out.test.unwrap();
    assert!((test.bits_per_token.unwrap() - test.loss / std::f64::consts::LN_2).abs() < 1e-12);
    (h, out.epochs.last().unwrap().val_loss.unwrap())
}

#[test]
fn transformer_validation_loss_falls_below_the_unigram_entropy_on_fortunes() {
    let dir = joulebench::data::text::resolve_dir(None, None);
    if !dir.join("fortunes").exists() {
        if std::env::var("JOULEBENCH_REQUIRE_DATA").is_ok_and(|v| v == "1") {
            panic!(
                "JOULEBENCH_REQUIRE_DATA=1 but the fortunes corpus is missing in {}",
                dir.display()
            );
        }
        eprintln!("skipping: fortunes corpus not installed");
        return;
    }
    let (h, loss) = unigram_entropy_and_loss(3200);
    eprintln!("unigram entropy {h:.3} nats, validation loss {loss:.3} nats");
    assert!(
        loss < h,
        "validation loss {loss} not below unigram entropy {h}"
    );
}
