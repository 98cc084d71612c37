//! One optimizer step over the MLP's parameters (535,818), on the same
//! gradients: candle_nn::AdamW vs the fused AdamW, and the tensor-op
//! SGD-momentum vs the fused one.
//!
//! Run: cargo bench --bench optimizer

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::model::ModelKind;
use joulebench::train::fused_optim::{FusedOptimizer, Rule};
use joulebench::train::init::SeededVars;
use joulebench::train::optim::SgdMomentum;

fn bench(c: &mut Criterion) {
    joulebench::util::alloc::keep_freed_memory();
    let dev = Device::Cpu;
    let vars = SeededVars::new(1);
    let model = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &dev), 10)
        .unwrap();
    let x = Tensor::rand(0f32, 1.0, (128, 784), &dev).unwrap();
    let y = Tensor::from_vec((0..128u32).map(|i| i % 10).collect::<Vec<_>>(), 128, &dev).unwrap();
    let grads = joulebench::train::loss_of(&model.forward(&x).unwrap(), &y)
        .unwrap()
        .backward()
        .unwrap();
    let all = || vars.var_map().all_vars();
    let mut g = c.benchmark_group("optimizer_step_mlp");
    g.sample_size(20);
    let mut adamw = candle_nn::AdamW::new_lr(all(), 1e-6).unwrap();
    g.bench_function("adamw/candle_nn", |b| {
        b.iter(|| adamw.step(&grads).unwrap())
    });
    let params = candle_nn::ParamsAdamW {
        lr: 1e-6,
        ..Default::default()
    };
    let mut fused = FusedOptimizer::adamw(all(), &params).unwrap();
    g.bench_function("adamw/fused", |b| b.iter(|| fused.step(&grads).unwrap()));
    let mut sgd = SgdMomentum::new(all(), 1e-6, 0.9, 0.0);
    g.bench_function("sgd-momentum/tensor-ops", |b| {
        b.iter(|| sgd.step(&grads).unwrap())
    });
    let rule = Rule::SgdMomentum {
        lr: 1e-6,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let mut fused_sgd = FusedOptimizer::new(all(), rule).unwrap();
    g.bench_function("sgd-momentum/fused", |b| {
        b.iter(|| fused_sgd.step(&grads).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
