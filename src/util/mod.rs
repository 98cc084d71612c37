//! Layer 0: small utilities every layer may use.

pub mod alloc;
pub mod device;
pub mod hash;
pub mod interrupt;
pub mod rng;
pub mod timefmt;
pub mod units;
