//! Layer 0: small utilities every layer may use.

pub mod alloc;
pub mod device;
pub mod fsio;
pub mod hash;
pub mod interrupt;
pub mod rng;
pub mod stats;
pub mod table;
pub mod timefmt;
pub mod units;

/// Longest value echoed whole in an error message.
const ECHO_MAX: usize = 200;

/// A value for an error message: whole, or its first 200 characters and how long it was.
pub fn clip(v: &str) -> String {
    clip_to(v, ECHO_MAX)
}

/// A parser's message (which may quote a value) cut at 1,200 characters:
/// enough for its list of expected names.
pub fn clip_message(v: &str) -> String {
    clip_to(v, 1_200)
}

fn clip_to(v: &str, max: usize) -> String {
    if v.chars().count() <= max {
        v.to_string()
    } else {
        let head: String = v.chars().take(max).collect();
        format!("{head}… ({} characters in all)", v.chars().count())
    }
}
