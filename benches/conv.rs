//! conv2d forward, and forward + backward, on the CNN's and MobileNet's
//! layer shapes (batch 128, f32, CPU): the fused im2col + gemm op against
//! candle's conv2d (+ bias + ReLU), in the same run.
//!
//! Run: cargo bench --bench conv

use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::ops::Activation;
use joulebench::ops::conv::{ConvSpec, conv2d_fused};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    joulebench::util::alloc::keep_freed_memory();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("conv2d_b128");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // (name, input (C, H), output channels, groups)
    let shapes = [
        ("cnn-conv1", (1, 28), 32, 1),
        ("cnn-conv2", (32, 14), 64, 1),
        ("mobilenet-depthwise", (64, 14), 64, 64),
    ];
    for (name, (ch, hw), out, groups) in shapes {
        let x =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (128, ch, hw, hw), &dev).unwrap()).unwrap();
        let w =
            Var::from_tensor(&Tensor::randn(0f32, 0.1, (out, ch / groups, 3, 3), &dev).unwrap())
                .unwrap();
        let b =
            Var::from_tensor(&Tensor::zeros(out, candle_core::DType::F32, &dev).unwrap()).unwrap();
        let spec = ConvSpec {
            stride: 1,
            pad: 1,
            groups,
            max_pool2: false,
        };
        let fwd = || conv2d_fused(&x, &w, Some(&b), spec, Activation::Relu).unwrap();
        for (label, fused) in [("fused", true), ("candle", false)] {
            joulebench::ops::set_fused(fused);
            g.bench_function(format!("{name}/forward/{label}"), |bn| bn.iter(fwd));
            g.bench_function(format!("{name}/forward+backward/{label}"), |bn| {
                bn.iter(|| fwd().sum_all().unwrap().backward().unwrap())
            });
        }
        joulebench::ops::set_fused(true);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
