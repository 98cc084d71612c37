//! One-line performance summary for the README, independent of `cargo bench`:
//! MLP and CNN training steps (batch 128, f32, 2 threads' worth of CPU) with
//! candle_nn's AdamW and with the fused AdamW, the optimizer step alone, and
//! each step's split into forward, backward and optimizer. Medians of 30 steps
//! after 5 warm-up steps, all measured in this one run.
//!
//! Run: cargo run --release --example perf_summary

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use joulebench::fused_adamw::FusedAdamW;
use joulebench::init::SeededVars;
use joulebench::model::ModelKind;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (step, forward, backward, optimizer) medians in ms.
fn measure(kind: ModelKind, fused: bool) -> (f64, f64, f64, f64) {
    let dev = Device::Cpu;
    let vars = SeededVars::new(1);
    let model = kind
        .build_default(vars.builder(DType::F32, &dev), 10)
        .unwrap();
    let mut plain = candle_nn::AdamW::new_lr(vars.var_map().all_vars(), 1e-3).unwrap();
    let mut fast =
        FusedAdamW::new(vars.var_map().all_vars(), 1e-3, 0.9, 0.999, 1e-8, 0.01).unwrap();
    let x = Tensor::rand(0f32, 1.0, (128, 1, 28, 28), &dev).unwrap();
    let y = Tensor::from_vec((0..128u32).map(|i| i % 10).collect::<Vec<_>>(), 128, &dev).unwrap();
    let (mut f, mut b, mut o, mut s) = (vec![], vec![], vec![], vec![]);
    for i in 0..35 {
        let t0 = Instant::now();
        let loss =
            joulebench::ops::cross_entropy::cross_entropy(&model.forward(&x).unwrap(), &y).unwrap();
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        if fused {
            fast.step(&grads).unwrap();
        } else {
            plain.step(&grads).unwrap();
        }
        let t3 = Instant::now();
        if i >= 5 {
            f.push((t1 - t0).as_secs_f64() * 1e3);
            b.push((t2 - t1).as_secs_f64() * 1e3);
            o.push((t3 - t2).as_secs_f64() * 1e3);
            s.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    (median(s), median(f), median(b), median(o))
}

fn main() {
    joulebench::alloc::keep_freed_memory();
    for kind in [ModelKind::Mlp, ModelKind::Cnn] {
        let (s0, f0, b0, o0) = measure(kind, false);
        let (s1, f1, b1, o1) = measure(kind, true);
        println!(
            "{:<4} step {:7.2} ms -> {:7.2} ms with fused AdamW ({:.2}x) | candle_nn: fwd {:.2} bwd {:.2} opt {:.2} | fused: fwd {:.2} bwd {:.2} opt {:.2} ms (optimizer {:.1}x faster)",
            kind.name(),
            s0,
            s1,
            s0 / s1,
            f0,
            b0,
            o0,
            f1,
            b1,
            o1,
            o0 / o1
        );
    }
}
