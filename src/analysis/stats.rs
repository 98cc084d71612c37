//! Small-sample statistics: mean, standard deviation, Student-t 95%
//! confidence intervals (t quantiles from statrs), paired differences and
//! MAD outlier flags.

use serde::{Deserialize, Serialize};

/// t such that P(|T| <= t) = 0.95 for `df` degrees of freedom (statrs'
/// inverse CDF of Student's t; NaN for df = 0).
pub fn t_975(df: usize) -> f64 {
    t_quantile(0.975, df as f64)
}

/// The `p` quantile of Student's t with `df` degrees of freedom (NaN when
/// df is not positive).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) if df > 0.0 && (0.0..=1.0).contains(&p) => t.inverse_cdf(p),
        _ => f64::NAN,
    }
}

/// Mean with a 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); NaN for n < 2.
    pub sd: f64,
    /// Half-width of the 95% Student-t interval; NaN for n < 2.
    pub ci95: f64,
}

impl Estimate {
    /// `mean ± ci` with `digits` decimals (`-` without a mean, the mean
    /// alone without an interval).
    pub fn fixed(&self, digits: usize) -> String {
        match (self.mean.is_finite(), self.ci95.is_finite()) {
            (false, _) => "-".into(),
            (true, false) => format!("{:.*}", digits, self.mean),
            (true, true) => format!("{:.*} ± {:.*}", digits, self.mean, digits, self.ci95),
        }
    }

    /// `mean ± ci` in scientific notation.
    pub fn sci(&self) -> String {
        match (self.mean.is_finite(), self.ci95.is_finite()) {
            (false, _) => "-".into(),
            (true, false) => format!("{:.3e}", self.mean),
            (true, true) => format!("{:.3e} ± {:.1e}", self.mean, self.ci95),
        }
    }

    pub fn of(xs: &[f64]) -> Estimate {
        let n = xs.len();
        if n == 0 {
            return Estimate {
                n,
                mean: f64::NAN,
                sd: f64::NAN,
                ci95: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Estimate {
                n,
                mean,
                sd: f64::NAN,
                ci95: f64::NAN,
            };
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        Estimate {
            n,
            mean,
            sd,
            ci95: t_975(n - 1) * sd / (n as f64).sqrt(),
        }
    }
    pub fn low(&self) -> f64 {
        self.mean - self.ci95
    }
    pub fn high(&self) -> f64 {
        self.mean + self.ci95
    }
    /// True when the interval excludes zero (a significant difference).
    pub fn excludes_zero(&self) -> bool {
        self.ci95.is_finite() && (self.low() > 0.0 || self.high() < 0.0)
    }
    /// `12.3 ± 0.4` (or `12.3` with no interval).
    pub fn show(&self, digits: usize) -> String {
        if self.ci95.is_finite() {
            format!("{:.*} ± {:.*}", digits, self.mean, digits, self.ci95)
        } else if self.mean.is_finite() {
            format!("{:.*}", digits, self.mean)
        } else {
            "-".into()
        }
    }
}

/// A paired comparison on the log scale: for each pair (same seed and
/// repeat) the log of treatment / baseline, their mean and a Student t 95%
/// interval, read back as percent changes.
///
/// Why the log scale: energy and time differences between variants are
/// multiplicative (a batch size that doubles the joules doubles them on
/// every seed), so log ratios are additive and their interval is symmetric
/// on the scale the effect acts on; a percent of the baseline is not
/// (2x more is +100 %, 2x less is -50 %), and averaging percents of
/// differently sized baselines mixes scales. Student t rather than a
/// bootstrap: with the 2-10 pairs a suite has, a bootstrap's resamples
/// cannot show more spread than the few pairs hold and its intervals come
/// out too narrow; t's interval accounts for the unknown spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Mean, sd and 95% half-width of log(treatment / baseline).
    pub log: Estimate,
}

impl Ratio {
    /// From (baseline, treatment) pairs; pairs that are not both positive
    /// and finite are left out.
    pub fn of_pairs(pairs: &[(f64, f64)]) -> Ratio {
        let logs: Vec<f64> = pairs
            .iter()
            .filter(|(b, t)| b.is_finite() && t.is_finite() && *b > 0.0 && *t > 0.0)
            .map(|(b, t)| (t / b).ln())
            .collect();
        Ratio {
            log: Estimate::of(&logs),
        }
    }

    pub fn pairs(&self) -> usize {
        self.log.n
    }

    fn pct(x: f64) -> f64 {
        (x.exp() - 1.0) * 100.0
    }

    /// The change of the treatment against the baseline, percent (geometric mean ratio − 1).
    pub fn change_pct(&self) -> f64 {
        Self::pct(self.log.mean)
    }

    /// The interval's ends, percent (NaN without an interval).
    pub fn low_pct(&self) -> f64 {
        Self::pct(self.log.low())
    }

    pub fn high_pct(&self) -> f64 {
        Self::pct(self.log.high())
    }

    /// The interval excludes no change.
    pub fn excludes_zero(&self) -> bool {
        self.log.excludes_zero()
    }

    /// The interval lies within ± `margin_pct`: any difference is smaller than what matters.
    pub fn within(&self, margin_pct: f64) -> bool {
        let m = (1.0 + margin_pct / 100.0).ln();
        self.log.ci95.is_finite() && self.log.low() > -m && self.log.high() < m
    }

    /// Resolved: a difference is shown, or ruled out beyond `margin_pct`.
    pub fn resolved(&self, margin_pct: f64) -> bool {
        self.excludes_zero() || self.within(margin_pct)
    }

    /// Pairs the observed spread needs for the question to be resolved at
    /// `margin_pct`: the fewest n whose t interval, with this sd, is narrow
    /// enough either to exclude zero at the observed mean or to fit inside
    /// ± margin around it. None without a spread (fewer than 2 pairs), or
    /// beyond 10,000 pairs.
    pub fn pairs_needed(&self, margin_pct: f64) -> Option<usize> {
        let sd = self.log.sd;
        if !(sd.is_finite() && sd > 0.0) {
            return (self.log.n >= 2 && sd == 0.0).then_some(self.log.n);
        }
        let d = self.log.mean.abs();
        let m = (1.0 + margin_pct / 100.0).ln();
        let target = d.max(m - d);
        (2..=10_000).find(|&n| t_975(n - 1) * sd / (n as f64).sqrt() < target)
    }

    /// `+12.3 % [+8.1, +16.7]` (or the change alone without an interval).
    pub fn show(&self) -> String {
        if !self.log.mean.is_finite() {
            return "-".into();
        }
        if !self.log.ci95.is_finite() {
            return format!("{:+.1} %", self.change_pct());
        }
        format!(
            "{:+.1} % [{:+.1}, {:+.1}]",
            self.change_pct(),
            self.low_pct(),
            self.high_pct()
        )
    }
}

pub use crate::util::stats::median;

/// Modified z-scores (Iglewicz & Hoaglin): 0.6745 (x - median) / MAD.
/// Zero when MAD is zero.
pub fn modified_z(xs: &[f64]) -> Vec<f64> {
    let med = median(xs);
    let dev: Vec<f64> = xs.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&dev);
    xs.iter()
        .map(|x| {
            if mad > 0.0 {
                0.6745 * (x - med) / mad
            } else {
                0.0
            }
        })
        .collect()
}

/// Indices whose |modified z| exceeds 3.5 (the usual threshold).
pub fn outliers(xs: &[f64]) -> Vec<usize> {
    modified_z(xs)
        .iter()
        .enumerate()
        .filter(|(_, z)| z.abs() > 3.5)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod t_tests {
    use super::*;

    #[test]
    fn a_doubling_on_every_seed_is_resolved_and_noise_is_not() {
        // mlp/b32 against b128 on the quick suite: 2.01x and 2.45x.
        let r = Ratio::of_pairs(&[(10.0, 20.1), (10.0, 24.5)]);
        assert!((r.change_pct() - 121.9).abs() < 0.5, "{}", r.change_pct());
        // Two pairs: t(1) = 12.7, the interval spans zero ...
        assert!(!r.resolved(5.0));
        // ... and the spread says how many pairs would settle it.
        let n = r.pairs_needed(5.0).unwrap();
        assert!(n == 3, "{n}");
        let r3 = Ratio::of_pairs(&[(10.0, 20.1), (10.0, 24.5), (10.0, 22.0)]);
        assert!(r3.excludes_zero() && r3.low_pct() > 50.0, "{}", r3.show());
        // Identical figures up to 1 % noise over 6 pairs: within a 5 % margin.
        let same: Vec<(f64, f64)> = (0..6)
            .map(|i| (10.0, 10.0 * (1.0 + 0.01 * ((i % 3) as f64 - 1.0))))
            .collect();
        let r = Ratio::of_pairs(&same);
        assert!(r.within(5.0) && !r.excludes_zero(), "{}", r.show());
        assert_eq!(Ratio::of_pairs(&[(10.0, 12.0)]).pairs_needed(5.0), None);
    }

    #[test]
    fn t_quantiles_match_the_published_table() {
        // Two-sided 95% critical values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
        for (df, t) in [
            (1, 12.706),
            (2, 4.303),
            (3, 3.182),
            (4, 2.776),
            (10, 2.228),
            (30, 2.042),
            (100, 1.984),
            (1000, 1.962),
        ] {
            assert!(
                (t_975(df) - t).abs() < 6e-4,
                "df {df}: {} vs {t}",
                t_975(df)
            );
        }
        assert!(t_975(0).is_nan());
    }
}
