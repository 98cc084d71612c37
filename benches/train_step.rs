//! One training step (forward + loss, backward, AdamW) per workload ×
//! parameter precision on the CPU, through joulebench's fused ops and fused
//! optimizer (`perf::StepBench`), plus candle's own ops and candle_nn's AdamW
//! ("f32-candle-ops") for the MLP and CNN, in the same run. The allocator is
//! tuned for all of them; `examples/perf_summary` also times candle as-is.
//! Precisions are pure (parameters and activations in that type), plus
//! "bf16-mixed" (f32 master weights, a bf16 copy each step, as `precision =
//! "bf16"` trains); a combination that cannot run on the CPU is reported and
//! skipped.
//!
//! Run: cargo bench --bench train_step

use candle_core::{DType, Device};
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::model::ModelKind;
use joulebench::train::bench::StepBench;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    joulebench::util::alloc::keep_freed_memory();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut cases = Vec::new();
    for &(_, kind) in ModelKind::ALL {
        for (pname, dtype) in [
            ("f32", DType::F32),
            ("bf16", DType::BF16),
            ("f16", DType::F16),
        ] {
            cases.push((kind, pname, dtype, true, false));
        }
        cases.push((kind, "bf16-mixed", DType::BF16, true, true));
    }
    for kind in [ModelKind::Mlp, ModelKind::Cnn] {
        cases.push((kind, "f32-candle-ops", DType::F32, false, false));
    }
    for (kind, pname, dtype, fused, mixed) in cases {
        joulebench::ops::set_fused(fused);
        let batch = if kind.uses_text() { 16 } else { 128 };
        let id = format!("{}/{pname}/b{batch}", kind.name());
        let made = if mixed {
            StepBench::mixed(kind, batch, dtype, fused, &dev)
        } else {
            StepBench::new(kind, batch, dtype, fused, &dev)
        };
        let mut b = match made.and_then(|mut b| b.step().map(|_| b)) {
            Ok(b) => b,
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default();
                eprintln!("train_step/{id}: skipped, it cannot run on the CPU: {why}");
                continue;
            }
        };
        g.bench_function(id, |bn| bn.iter(|| b.step().unwrap()));
    }
    joulebench::ops::set_fused(true);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
