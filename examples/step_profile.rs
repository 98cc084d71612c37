//! Runs training steps of one model with joulebench's defaults (fused ops,
//! fused AdamW) for a profiler, and prints the median phase times.
//!
//! Run: cargo run --release --example step_profile -- cnn [f32|bf16|bf16-pure] [steps]
//! (`bf16`: f32 master weights and a bf16 copy each step, as `precision =
//! "bf16"` trains; `bf16-pure`: bf16 weights.)
//! then e.g. `perf record -g target/release/examples/step_profile cnn`.

use candle_core::{DType, Device};
use joulebench::model::ModelKind;
use joulebench::train::bench::{StepBench, median};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind: ModelKind = args.first().map_or("cnn", |s| s.as_str()).parse()?;
    let precision = args.get(1).map_or("f32", |s| s.as_str());
    let steps: usize = args.get(2).map_or(Ok(50), |s| s.parse())?;
    let _tuning = joulebench::util::alloc::keep_freed_memory();
    let dev = Device::Cpu;
    let mut b = match precision {
        "f32" => StepBench::new(kind, 128, DType::F32, true, &dev)?,
        "bf16" => StepBench::mixed(kind, 128, DType::BF16, true, &dev)?,
        "bf16-pure" => StepBench::new(kind, 128, DType::BF16, true, &dev)?,
        other => anyhow::bail!("precision must be f32, bf16 or bf16-pure, got {other:?}"),
    };
    let samples: Vec<_> = (0..steps + 5)
        .map(|_| b.step())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (s, p) = median(&samples[5..]);
    println!(
        "{kind:?} {precision}: step {:.2} ms (forward {:.2}, backward {:.2}, optimizer {:.2})",
        s.0 * 1e3,
        p.forward_s.0 * 1e3,
        p.backward_s.0 * 1e3,
        p.optimizer_s.0 * 1e3
    );
    Ok(())
}
