//! Overhead of the NVML poller thread on training: MLP training steps with
//! an `NvmlMeter` polling a stand-in GPU API every 20 ms, against the same
//! steps with no poller, alternated 5 times; prints the ratio of medians.
//! (The stand-in answers instantly, so this measures the thread's wake-ups
//! and bookkeeping; real NVML calls add their own latency on a GPU host.)
//!
//! Run: cargo run --example meter_overhead

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use joulebench::init::SeededVars;
use joulebench::meter::nvml::{GpuApi, GpuState, NvmlMeter};
use joulebench::model::ModelKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct StandIn;
impl GpuApi for StandIn {
    fn device_count(&self) -> Result<u32, String> {
        Ok(1)
    }
    fn uuid(&self, _: u32) -> Result<String, String> {
        Ok("GPU-standin".into())
    }
    fn name(&self, _: u32) -> Result<String, String> {
        Ok("stand-in".into())
    }
    fn driver_version(&self) -> Option<String> {
        None
    }
    fn total_energy_mj(&self, _: u32) -> Result<u64, String> {
        Err("not supported".into())
    }
    fn power_instant_mw(&self, _: u32) -> Result<u32, String> {
        Ok(100_000)
    }
    fn power_usage_mw(&self, _: u32) -> Result<u32, String> {
        Ok(100_000)
    }
    fn state(&self, _: u32) -> GpuState {
        GpuState::default()
    }
}

fn steps(n: usize) -> f64 {
    let dev = Device::Cpu;
    let vars = SeededVars::new(1);
    let model = ModelKind::Mlp
        .build_default(vars.builder(DType::F32, &dev), 10)
        .unwrap();
    let mut opt = candle_nn::AdamW::new_lr(vars.var_map().all_vars(), 1e-3).unwrap();
    let x = Tensor::rand(0f32, 1.0, (128, 784), &dev).unwrap();
    let y = Tensor::from_vec((0..128u32).map(|i| i % 10).collect::<Vec<_>>(), 128, &dev).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let loss = candle_nn::loss::cross_entropy(&model.forward(&x).unwrap(), &y).unwrap();
        opt.backward_step(&loss).unwrap();
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = 60;
    steps(5); // warm-up
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        off.push(steps(n));
        let meter =
            NvmlMeter::open(Arc::new(StandIn), None, &[0], Duration::from_millis(20)).unwrap();
        on.push(steps(n));
        drop(meter);
    }
    let (a, b) = (median(off), median(on));
    println!(
        "MLP step (batch 128): {:.2} ms without poller, {:.2} ms with a 20 ms NVML poller: ratio {:.4} ({:+.2}%)",
        a * 1e3,
        b * 1e3,
        b / a,
        (b / a - 1.0) * 100.0
    );
}
