//! joulebench: train reference models under optimization variants and
//! measure what each costs in joules, seconds, CO2e and water.
//!
//! Data flow: `suite` (TOML) → `plan` → `runner` (per trial: `data`,
//! `model` with seeded `init`, `trainer` with `meter` windows) → `record`s
//! appended by `store` to `results/<suite>/<run>/trials.jsonl`.

pub mod alloc;
pub mod analysis;
pub mod claims;
pub mod data;
pub mod device;
pub mod distill;
pub mod early_stopping;
pub mod fused_optim;
pub mod grads;
pub mod impact;
pub mod init;
pub mod loss_scale;
pub mod manifest;
pub mod meter;
pub mod meters_report;
pub mod model;
pub mod ops;
pub mod optim;
pub mod peaks;
pub mod perf;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod quantize;
pub mod record;
pub mod reproduce;
pub mod rng;
pub mod runner;
pub mod store;
pub mod structured;
pub mod suite;
pub mod summary;
pub mod timefmt;
pub mod trainer;
pub mod units;
