//! Order statistics every layer may use: one quantile for the analysis
//! (medians and MADs), the carbon-aware schedule (10th/50th/90th percentiles)
//! and the step benchmarks (median phase times).

/// Quantile `q` (clamped to [0, 1]) of ascending `sorted` values, linearly
/// interpolated between the two nearest order statistics (Hyndman & Fan
/// type 7, the default of R and NumPy); NaN when empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    if frac == 0.0 {
        return sorted[lo];
    }
    if frac == 0.5 {
        // The halfway point rounded once (a + (b - a) / 2 may land an ulp off).
        return (sorted[lo] + sorted[hi]) / 2.0;
    }
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// `quantile_sorted` of values in any order (sorts a copy, NaN last).
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

/// The median: the middle value, or the mean of the two middle ones.
pub fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(quantile_sorted(&v, 2.0), 4.0);
        assert!((quantile_sorted(&v, 0.1) - 1.3).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.9) - 3.7).abs() < 1e-12);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.25), 1.75);
    }

    #[test]
    fn median_is_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
        // Rounded once, as (a + b) / 2: 0.1 + (0.7 - 0.1) / 2 would differ.
        for (a, b) in [(0.1, 0.7), (1e-3, 3.3e-3), (0.3, 0.6000000000000001)] {
            assert_eq!(median(&[b, a]), (a + b) / 2.0);
        }
    }
}
