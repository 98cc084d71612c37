//! Layer 6: techniques that act around the training loop — magnitude
//! pruning (hooks), structured pruning (rebuild smaller), distillation
//! (teacher loss) — and how a trial's techniques compose (`pipeline`).

pub mod distill;
pub mod error;
pub mod pipeline;
pub mod prune;
pub mod structured;
