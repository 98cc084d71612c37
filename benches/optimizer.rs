//! One optimizer step over the MLP's parameters: candle_nn::AdamW vs the
//! fused in-place AdamW, on the same gradients.

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::fused_optim::FusedOptimizer;
use joulebench::init::SeededVars;
use joulebench::model::ModelKind;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vars = SeededVars::new(1);
    let model = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &dev), 10)
        .unwrap();
    let x = Tensor::rand(0f32, 1.0, (128, 784), &dev).unwrap();
    let y = Tensor::from_vec((0..128u32).map(|i| i % 10).collect::<Vec<_>>(), 128, &dev).unwrap();
    let grads = candle_nn::loss::cross_entropy(&model.forward(&x).unwrap(), &y)
        .unwrap()
        .backward()
        .unwrap();
    let mut g = c.benchmark_group("adamw_step_mlp");
    g.sample_size(20);
    let mut plain = candle_nn::AdamW::new_lr(vars.var_map().all_vars(), 1e-5).unwrap();
    g.bench_function("candle_nn", |b| b.iter(|| plain.step(&grads).unwrap()));
    let mut fused =
        FusedOptimizer::adamw(vars.var_map().all_vars(), 1e-5, 0.9, 0.999, 1e-8, 0.01).unwrap();
    g.bench_function("fused", |b| b.iter(|| fused.step(&grads).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
