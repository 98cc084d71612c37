//! Layer 1: the typed, resolved settings of a trial and the plan types.
//! Plain data with one name table per enum-valued setting (`names`); it
//! depends on nothing but `util`. `suite` parses TOML into it; every
//! layer above reads it.

pub mod batch;
pub mod claim;
pub mod measure;
pub mod model;
pub mod names;
pub mod plan;
pub mod protocol;
pub mod technique;
pub mod trial;

pub use batch::{BatchRule, BatchSchedule, BatchScheduleSpec};
pub use measure::{GpuSelection, MeterChoice};
pub use model::{Attention, AttentionKind, ModelKind, ModelSize};
pub use plan::{Plan, TrialKey, TrialSpec};
pub use technique::{
    DistillConfig, PruneConfig, QuantType, Schedule, Scope, SparseConfig, SparseFormat, Structure,
};
pub use trial::{
    EarlyStopping, LrScaling, OptimizerConfig, OptimizerKind, Precision, StopMetric, TrialConfig,
};
