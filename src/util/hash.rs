//! The one stable hash of the crate, for identifiers and seed streams that
//! must be the same on every machine, in every process and in every version
//! (Rust's `DefaultHasher` is seeded per process and documented as unstable
//! across releases): 64-bit FNV-1a, from the `fnv` crate.

use std::hash::Hasher;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // A trial id's input (key and config as JSON), computed with the
        // code of commit dc3fb4a: ids in records written then stay valid.
        let json = br#"[{"workload":"mlp","variant":"base","seed":1,"repeat":0},{}]"#;
        assert_eq!(format!("{:016x}", fnv1a64(json)), "78bef95fcac7c610");
    }
}
