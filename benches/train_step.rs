//! One training step (forward, backward, AdamW) per workload, batch 128, f32, CPU.

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::init::SeededVars;
use joulebench::model::ModelKind;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("train_step_b128_f32");
    g.sample_size(10);
    for kind in [ModelKind::Mlp, ModelKind::Cnn] {
        let vars = SeededVars::new(1);
        let model = kind
            .build_default(vars.builder(DType::F32, &dev), 10)
            .unwrap();
        let mut opt = candle_nn::AdamW::new_lr(vars.var_map().all_vars(), 1e-3).unwrap();
        let x = Tensor::rand(0f32, 1.0, (128, 1, 28, 28), &dev).unwrap();
        let y = Tensor::arange(0u32, 128, &dev)
            .unwrap()
            .affine(1.0, 0.0)
            .unwrap();
        let y = (y.to_dtype(DType::F32).unwrap() / 13.0)
            .unwrap()
            .floor()
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap();
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                let logits = model.forward(&x).unwrap();
                let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
                opt.backward_step(&loss).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
