//! Layer 8: what a run shows on the terminal (progress bars, one-line
//! trial summaries).

pub mod meters;
pub mod progress;
pub mod summary;
