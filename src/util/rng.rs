//! A small, versioned, seedable PRNG (SplitMix64 seeding a xoshiro256**).
//!
//! We do not use `rand` for anything that decides results: its streams may
//! change between versions, and candle's own initialisation is not seeded.
//! With this generator one seed fixes initial weights, data order and splits,
//! forever.

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a hash of a string, used to derive independent streams by name.
pub fn hash_str(s: &str) -> u64 {
    crate::util::hash::fnv1a64(s.as_bytes())
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Self { s }
    }

    /// An independent stream derived from a seed and a purpose, e.g.
    /// `Rng::derive(seed, "init/fc1.weight")` or `Rng::derive(seed, "epoch/3")`.
    pub fn derive(seed: u64, purpose: &str) -> Self {
        let mut st = seed ^ hash_str(purpose).rotate_left(17);
        Self::new(splitmix64(&mut st))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (Lemire's multiply-shift, bias negligible for our n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Standard normal via Box–Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }

    /// A random permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..n as u32).collect();
        self.shuffle(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_purpose_different_stream() {
        let a: Vec<u64> = (0..4).map(|_| Rng::derive(7, "x").next_u64()).collect();
        assert!(a.iter().all(|&v| v == a[0]));
        assert_ne!(
            Rng::derive(7, "x").next_u64(),
            Rng::derive(7, "y").next_u64()
        );
        assert_ne!(
            Rng::derive(7, "x").next_u64(),
            Rng::derive(8, "x").next_u64()
        );
    }

    #[test]
    fn derived_streams_stay_what_older_versions_drew() {
        // Computed with the code of commit dc3fb4a: seeds, initial weights
        // and data order of records written then must not change.
        let first_two = |seed, purpose| {
            let mut r = Rng::derive(seed, purpose);
            (r.next_u64(), r.next_u64())
        };
        assert_eq!(
            first_two(0, "data-order/epoch-1"),
            (0xd851_5e6d_f0b3_f1fd, 0xd1bf_d886_0821_6edf)
        );
        assert_eq!(
            first_two(1, "init/fc1.weight"),
            (0x9f56_0692_9584_f812, 0x7300_a0d9_c0c3_e254)
        );
        assert_eq!(
            first_two(42, "teacher"),
            (0x92f3_9c75_22b6_6c35, 0x3a76_7f51_bc5d_92ec)
        );
        assert_eq!(
            first_two(7, ""),
            (0xbe7f_ba89_3668_a336, 0xfc69_c2c6_e8cb_b6ed)
        );
        assert_eq!(hash_str("init/fc1.weight"), 0x9376_e568_dbf7_670c);
        assert_eq!(hash_str("teacher"), 0x1b2f_df09_9975_99f5);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Rng::new(3).permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<u32>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(1);
        let xs: Vec<f64> = (0..200_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }
}
