//! Summary statistics of repeated timings: mean, sample standard deviation, median, min, max,
//! the 95th percentile and a 95% confidence interval of the mean.
//!
//! Timings are noisy and skewed (a context switch makes one run slow, nothing makes one run
//! fast), so one number is never enough: the median resists outliers, p95 shows the tail, and
//! the confidence interval says how far the mean could move if the benchmark were run again.
//! With few runs the interval uses Student's t distribution (`n - 1` degrees of freedom), which
//! is wider than the normal's 1.96 to account for estimating the standard deviation too.

use crate::harness::error::{HarnessError, Result};

/// Two-sided 95% critical values of Student's t for 1..=30 degrees of freedom.
const T_95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The two-sided 95% critical value of Student's t with `df` degrees of freedom (`df >= 1`):
/// the table for `df <= 30`, then the Cornish-Fisher expansion around the normal's 1.959964
/// (within 0.001 of the exact value from 31 on; 1.96 in the limit).
pub fn t_critical_95(df: usize) -> f64 {
    // HINT: look small df up in T_95 (index df - 1); beyond the table, correct z = 1.959964 by
    // HINT: (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2).
    // BEGIN SOLUTION
    if df == 0 {
        return f64::INFINITY;
    }
    if df <= T_95.len() {
        return T_95[df - 1];
    }
    let z: f64 = 1.959_963_985;
    let v = df as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
    // END SOLUTION
}

/// The `q`-quantile (`0 <= q <= 1`) of sorted values, interpolating linearly between the two
/// nearest ranks (NumPy's default, "type 7"): rank `q * (n - 1)`.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    // HINT: rank = q * (n - 1); take the values at floor(rank) and ceil(rank) and interpolate
    // HINT: by the fractional part.
    // BEGIN SOLUTION
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (rank - lo as f64) * (sorted[hi] - sorted[lo])
    // END SOLUTION
}

/// What a set of samples (e.g. seconds per run) looks like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divides by `n - 1`).
    pub std: f64,
    /// Middle value (mean of the two middle values for even `n`).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// 95th percentile (linear interpolation between ranks).
    pub p95: f64,
    /// Lower end of the 95% confidence interval of the mean.
    pub ci95_low: f64,
    /// Upper end of the 95% confidence interval of the mean.
    pub ci95_high: f64,
}

impl Summary {
    /// Summarise at least two finite samples (a spread needs two).
    pub fn from_samples(samples: &[f64]) -> Result<Summary> {
        if samples.len() < 2 {
            return Err(HarnessError::TooFewSamples {
                what: "Summary::from_samples",
                needed: 2,
                got: samples.len(),
            });
        }
        if let Some((index, &value)) = samples.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(HarnessError::NonFinite {
                what: "Summary::from_samples",
                index,
                value,
            });
        }
        // HINT: sort a copy; mean = sum / n; std = sqrt(sum (x - mean)^2 / (n - 1)); median and
        // HINT: p95 are quantiles 0.5 and 0.95; the interval is mean -+ t(n - 1) * std / sqrt(n).
        // BEGIN SOLUTION
        let n = samples.len();
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t_critical_95(n - 1) * std / (n as f64).sqrt();
        Ok(Summary {
            n,
            mean,
            std,
            median: quantile_sorted(&sorted, 0.5),
            min: sorted[0],
            max: sorted[n - 1],
            p95: quantile_sorted(&sorted, 0.95),
            ci95_low: mean - half,
            ci95_high: mean + half,
        })
        // END SOLUTION
    }

    /// Half the width of the confidence interval.
    pub fn ci95_half_width(&self) -> f64 {
        (self.ci95_high - self.ci95_low) / 2.0
    }

    /// Every statistic multiplied by `factor` (e.g. seconds to milliseconds). The spread scales
    /// by `|factor|`.
    pub fn scaled(&self, factor: f64) -> Summary {
        Summary {
            n: self.n,
            mean: self.mean * factor,
            std: self.std * factor.abs(),
            median: self.median * factor,
            min: self.min * factor,
            max: self.max * factor,
            p95: self.p95 * factor,
            ci95_low: self.ci95_low * factor,
            ci95_high: self.ci95_high * factor,
        }
    }

    /// The summary as a JSON object (the `*_ms` objects of the report).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "p95": self.p95,
            "ci95_low": self.ci95_low,
            "ci95_high": self.ci95_high,
        })
    }
}
