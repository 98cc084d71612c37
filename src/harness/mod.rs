//! Layer 9: running a plan — trials in order with their measurement, run
//! folders that survive a crash, manifests, and the training-step fixtures
//! the benches share.

pub mod datasets;
pub mod gpu_settings;
pub mod manifest;
pub mod meters_report;
pub mod options;
pub mod perf;
pub mod runner;
pub mod shard;
pub mod sharded;
pub mod slurm;
pub mod store;
