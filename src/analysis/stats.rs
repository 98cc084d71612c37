//! Small-sample statistics: mean, standard deviation, Student-t 95%
//! confidence intervals, paired differences and MAD outlier flags.

use serde::{Deserialize, Serialize};

/// Two-sided 97.5% quantiles of Student's t for df = 1..=30.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// t such that P(|T| <= t) = 0.95 for `df` degrees of freedom.
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        // Beyond 30: the Cornish-Fisher expansion around z = 1.959964.
        _ => {
            let z: f64 = 1.959964;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
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
