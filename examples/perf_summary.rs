//! Training-step speed for the README, independent of `cargo bench`: MLP and
//! CNN steps (batch 128, f32, CPU) from plain candle to joulebench's
//! defaults, one change at a time, all measured in this one run:
//!
//! 1. candle as-is: candle_nn layers, loss and AdamW, glibc's default allocator;
//! 2. + the allocator keeps freed memory (`joulebench::util::alloc`);
//! 3. + the fused ops (`joulebench::ops`);
//! 4. + the fused AdamW (`joulebench::train::fused_optim`) = joulebench's default.
//!
//! 5. the default in mixed bf16 (`precision = "bf16"`: f32 master weights, a
//!    bf16 copy each step; its products on the path `ops::bf16_gemm::path`).
//!
//! Medians of 30 steps after 5 warm-up steps, split into forward (with the
//! loss), backward and optimizer. Prints a Markdown table, a summary line and
//! one `RESULT` line per model and precision for `scripts/torch-ratio.sh`.
//!
//! Run: cargo run --release --example perf_summary

use candle_core::{DType, Device};
use joulebench::model::ModelKind;
use joulebench::record::PhaseTimes;
use joulebench::train::bench::{StepBench, median};

const CONFIGS: [&str; 5] = [
    "candle as-is",
    "+ allocator keeps freed memory",
    "+ fused ops",
    "+ fused AdamW (default)",
    "default, mixed bf16",
];

fn measure(kind: ModelKind, fused_optimizer: bool, bf16: bool) -> (f64, PhaseTimes) {
    let dev = Device::Cpu;
    let mut b = if bf16 {
        StepBench::mixed(kind, 128, DType::BF16, fused_optimizer, &dev)
    } else {
        StepBench::new(kind, 128, DType::F32, fused_optimizer, &dev)
    }
    .unwrap();
    let samples: Vec<PhaseTimes> = (0..35).map(|_| b.step().unwrap()).skip(5).collect();
    let (s, p) = median(&samples);
    (s.0, p)
}

fn main() {
    let kinds = [ModelKind::Mlp, ModelKind::Cnn];
    let mut rows: Vec<(ModelKind, usize, f64, PhaseTimes)> = Vec::new();
    // The allocator setting cannot be undone, so every model's baseline runs first.
    joulebench::ops::set_fused(false);
    for kind in kinds {
        let (s, p) = measure(kind, false, false);
        rows.push((kind, 0, s, p));
    }
    let tuning = joulebench::util::alloc::keep_freed_memory();
    for kind in kinds {
        for (config, fused_ops, fused_opt, bf16) in [
            (1, false, false, false),
            (2, true, false, false),
            (3, true, true, false),
            (4, true, true, true),
        ] {
            joulebench::ops::set_fused(fused_ops);
            let (s, p) = measure(kind, fused_opt, bf16);
            rows.push((kind, config, s, p));
        }
    }
    rows.sort_by_key(|r| (r.0 != ModelKind::Mlp, r.1));
    println!("allocator: {}", tuning.describe());
    println!("bf16 path: {}", joulebench::ops::bf16_gemm::path());
    println!("| model | configuration | step ms | forward | backward | optimizer | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    let base = |kind| {
        rows.iter()
            .find(|r| r.0 == kind && r.1 == 0)
            .map_or(f64::NAN, |r| r.2)
    };
    for (kind, config, s, p) in &rows {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}x |",
            kind.name(),
            CONFIGS[*config],
            s * 1e3,
            p.forward_s.0 * 1e3,
            p.backward_s.0 * 1e3,
            p.optimizer_s.0 * 1e3,
            base(*kind) / s
        );
    }
    let last = |kind| {
        rows.iter()
            .find(|r| r.0 == kind && r.1 == 3)
            .map_or(f64::NAN, |r| r.2)
    };
    for (kind, config, s, p) in rows.iter().filter(|r| r.1 >= 3) {
        println!(
            "RESULT framework=joulebench model={} precision={} ms_per_step_median={:.3} fwd_ms={:.3} bwd_ms={:.3} opt_ms={:.3}",
            kind.name(),
            if *config == 4 { "bf16" } else { "f32" },
            s * 1e3,
            p.forward_s.0 * 1e3,
            p.backward_s.0 * 1e3,
            p.optimizer_s.0 * 1e3
        );
    }
    println!(
        "summary: MLP step {:.1} -> {:.1} ms ({:.1}x; target <= 7 ms), CNN step {:.0} -> {:.0} ms ({:.1}x; target <= 120 ms), batch 128, f32, {} threads",
        base(ModelKind::Mlp) * 1e3,
        last(ModelKind::Mlp) * 1e3,
        base(ModelKind::Mlp) / last(ModelKind::Mlp),
        base(ModelKind::Cnn) * 1e3,
        last(ModelKind::Cnn) * 1e3,
        base(ModelKind::Cnn) / last(ModelKind::Cnn),
        candle_core::utils::get_num_threads()
    );
}
