//! The GPU device layer, apart from the meter that reads it: the few NVML
//! calls joulebench makes (`api`: the `GpuApi` seam tests script, the real
//! NVML through nvml-wrapper, which GPUs a run measures) and the device
//! control a trial may ask for (`control`: power limits and locked clocks,
//! saved and restored around each trial).

pub mod api;
pub mod control;
