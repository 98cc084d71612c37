//! Energy-meter overhead on training: an MLP training step (batch 128) with
//! no meter, and the same step inside an open window of an NVML meter whose
//! poller samples every 20 ms (through `InstantGpu`, a stand-in that answers
//! at once, since this machine has no GPU). The ratio of the two is the
//! overhead; `cargo run --release --example meter_overhead` prints it.
//!
//! Run: cargo bench --bench meter_overhead

use candle_core::{DType, Device};
use criterion::{Criterion, criterion_group, criterion_main};
use joulebench::meter::Measurer;
use joulebench::meter::fake::InstantGpu;
use joulebench::meter::nvml::NvmlMeter;
use joulebench::model::ModelKind;
use joulebench::train::bench::StepBench;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    joulebench::util::alloc::keep_freed_memory();
    let mut b = StepBench::new(ModelKind::Mlp, 128, DType::F32, true, &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("meter_overhead_mlp_step");
    g.sample_size(30);
    g.bench_function("meter off", |bn| bn.iter(|| b.step().unwrap()));
    let meter =
        NvmlMeter::open(Arc::new(InstantGpu), None, &[0], Duration::from_millis(20)).unwrap();
    let mut m = Measurer::new(Box::new(meter), Device::Cpu);
    let w = m.begin("bench").unwrap();
    g.bench_function("meter on (nvml poller, 20 ms)", |bn| {
        bn.iter(|| b.step().unwrap())
    });
    m.end(w).unwrap();
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
