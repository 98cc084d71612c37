//! joulebench: train reference models under optimization variants and
//! measure what each costs in joules, seconds, CO2e and water.
//!
//! Each folder is a layer; a module imports only from layers below it
//! (`tests/layers.rs` fails the build's tests otherwise). From the bottom:
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | `util` | units newtypes, seeded RNG, time formats, device spec, allocator |
//! | 1 | `config` | typed, resolved settings of a trial and the plan types: plain data |
//! | 2 | `ops`, `data`, `meter`, `impact` | fused CPU ops, datasets, energy meters, CO2e/water |
//! | 3 | `model` | reference models and their quantized layers |
//! | 4 | `record` | every record type written to `trials.jsonl` |
//! | 5 | `train` | the one training loop, optimizers, precision, evaluation windows |
//! | 6 | `technique` | pruning, structured pruning, distillation, their composition |
//! | 7 | `suite` | TOML → checked layers → `config` → the plan |
//! | 8 | `console` | progress output, one-line trial summaries |
//! | 9 | `harness` | running a plan, run folders, manifests, bench fixtures |
//! | 10 | `analysis` | statistics, series, plots, report, compare, claim verdicts (reads records only) |
//! | 11 | `reproduce` | runs claim suites and judges them |
//! | 12 | `cli` (the binary) | one file per subcommand |
//!
//! Data flow: `suite` (TOML) → `config::plan` → `harness::runner` (per
//! trial: `data`, `model` with seeded `train::init`, `train` with `meter`
//! windows, `technique`s around it) → `record`s appended by
//! `harness::store` to `results/<suite>/<run>/trials.jsonl`.

pub mod util;

pub mod config;

pub mod data;
pub mod gpu;
pub mod impact;
pub mod meter;
pub mod ops;

pub mod model;

pub mod record;

pub mod train;

pub mod technique;

pub mod measure;

pub mod suite;

pub mod console;

pub mod runfolder;

pub mod cluster;

pub mod harness;

pub mod analysis;

pub mod reproduce;
