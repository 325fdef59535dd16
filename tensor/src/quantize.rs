//! Affine int8 quantization: `q = clamp(round(x / scale) + zero_point)`, `x ≈ (q - zero_point) * scale`.
//!
//! A float range `[min, max]` is mapped onto the 256 integers of an `i8`. Two schemes:
//!
//! - **symmetric**: `zero_point = 0`, `scale = max(|min|, |max|) / 127`, codes in `[-127, 127]`
//!   (the code -128 is left unused so that negating a code never overflows). Weights use this:
//!   the int8 GEMM then needs no zero-point correction.
//! - **asymmetric**: `scale = (max - min) / 255` and an integer `zero_point` in `[-128, 127]`
//!   such that the real value 0 is exactly representable; codes use all of `[-128, 127]`. A
//!   lopsided range (ReLU outputs, all positive) keeps the full 8 bits.
//!
//! Parameters are per tensor (one `(scale, zero_point)`) or per channel along axis 0 (one per
//! output row of a weight; each row gets its own range, so one large row does not crush the
//! resolution of the others). Inside the range, the round-trip error is at most `scale / 2`.
//!
//! [`QuantParams::from_min_max`] is the one place the parameters are computed, so a calibrator
//! that has observed a range (see [`RangeObserver`]) gets exactly the parameters that
//! [`quantize`] would have chosen. A zero range (a constant-zero tensor, an all-zero row) gets
//! `scale = 1` instead of 0, so nothing is ever divided by zero. Infinite or NaN inputs are refused
//! with an error naming the op: they have no finite range to map.

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// The largest magnitude of a symmetric code (`-127..=127`).
pub const SYMMETRIC_QMAX: i32 = 127;

/// Symmetric (zero point 0) or asymmetric (zero point chosen from the range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantScheme {
    /// `zero_point = 0`, codes in `[-127, 127]`.
    Symmetric,
    /// `zero_point` in `[-128, 127]`, codes in `[-128, 127]`.
    Asymmetric,
}

impl QuantScheme {
    /// The smallest and largest code of the scheme.
    pub fn code_range(self) -> (i32, i32) {
        match self {
            QuantScheme::Symmetric => (-SYMMETRIC_QMAX, SYMMETRIC_QMAX),
            QuantScheme::Asymmetric => (-128, 127),
        }
    }
}

/// One tensor-wide parameter set, or one per index of axis 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// One `(scale, zero_point)` for the whole tensor.
    PerTensor,
    /// One per index of axis 0 (the output channel of a `(out, in)` weight).
    PerChannel,
}

/// The affine map between floats and codes: `x ≈ (q - zero_point) * scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    /// The float step between consecutive codes (always finite and > 0).
    pub scale: f32,
    /// The code that represents the real value 0.
    pub zero_point: i32,
    /// Which codes are allowed.
    pub scheme: QuantScheme,
}

impl QuantParams {
    /// The parameters that map `[min, max]` onto the scheme's codes.
    ///
    /// The range is first widened to contain 0 (so 0 is exact, as padding and ReLU need). A zero
    /// range gives `scale = 1`. Fails (op `quantize`) on a non-finite bound or `min > max`.
    pub fn from_min_max(min: f32, max: f32, scheme: QuantScheme) -> Result<QuantParams> {
        if !min.is_finite() || !max.is_finite() || min > max {
            return Err(TensorError::invalid(
                "quantize",
                &[],
                format!("cannot compute quantization parameters from the range [{min}, {max}]"),
            ));
        }
        let (scale, zero_point) = affine_params(min.min(0.0), max.max(0.0), scheme);
        Ok(QuantParams {
            scale,
            zero_point,
            scheme,
        })
    }

    /// Symmetric parameters with a given scale (must be finite and > 0).
    pub fn symmetric(scale: f32) -> Result<QuantParams> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(TensorError::invalid(
                "quantize",
                &[],
                format!("scale must be finite and positive, got {scale}"),
            ));
        }
        Ok(QuantParams {
            scale,
            zero_point: 0,
            scheme: QuantScheme::Symmetric,
        })
    }

    /// The code of one value (rounded to nearest, ties to even, then clamped to the scheme).
    #[inline(always)]
    pub fn quantize_value(&self, x: f32) -> i8 {
        // HINT: divide by the scale, round (ties to even), shift by the zero point, clamp to
        // HINT: the scheme's code range.
        // BEGIN SOLUTION
        let (lo, hi) = self.scheme.code_range();
        let q = (x / self.scale).round_ties_even() + self.zero_point as f32;
        q.clamp(lo as f32, hi as f32) as i8
        // END SOLUTION
    }

    /// The float a code stands for.
    #[inline(always)]
    pub fn dequantize_value(&self, q: i8) -> f32 {
        // HINT: undo the zero-point shift, then scale.
        // BEGIN SOLUTION
        (q as i32 - self.zero_point) as f32 * self.scale
        // END SOLUTION
    }
}

/// `(scale, zero_point)` mapping `[min, max]` (which contains 0) onto the scheme's codes.
fn affine_params(min: f32, max: f32, scheme: QuantScheme) -> (f32, i32) {
    // HINT: symmetric: the larger magnitude maps to 127; asymmetric: the whole range spans 255
    // HINT: steps and the zero point is the code of 0.0. A zero range must not give scale 0.
    // BEGIN SOLUTION
    let (scale, zero_point) = match scheme {
        QuantScheme::Symmetric => (max.max(-min) / SYMMETRIC_QMAX as f32, 0),
        QuantScheme::Asymmetric => {
            let scale = (max - min) / 255.0;
            let zero_point = if scale > 0.0 {
                (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32
            } else {
                0
            };
            (scale, zero_point)
        }
    };
    // A zero range (or one so small the step underflows) quantizes everything to the zero
    // point; any positive scale does, 1 keeps dequantization trivially exact.
    let scale = if scale.is_normal() { scale } else { 1.0 };
    (scale, zero_point)
    // END SOLUTION
}

/// An int8 tensor with its quantization parameters (one set, or one per index of axis 0).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTensor {
    data: Vec<i8>,
    shape: Vec<usize>,
    params: Vec<QuantParams>,
    granularity: Granularity,
}

impl QuantizedTensor {
    /// The codes, row-major.
    pub fn data(&self) -> &[i8] {
        &self.data
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// One parameter set (per tensor) or one per index of axis 0 (per channel).
    pub fn params(&self) -> &[QuantParams] {
        &self.params
    }

    /// Per tensor or per channel.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The codes, consuming the tensor.
    pub fn into_data(self) -> Vec<i8> {
        self.data
    }

    /// The float tensor the codes stand for.
    pub fn dequantize(&self) -> Result<Tensor> {
        let row = row_len(&self.shape, self.granularity);
        let mut out = Vec::with_capacity(self.data.len());
        for (i, chunk) in self.data.chunks(row.max(1)).enumerate() {
            let p = self.params[if self.params.len() == 1 { 0 } else { i }];
            out.extend(chunk.iter().map(|&q| p.dequantize_value(q)));
        }
        Tensor::from_vec(out, &self.shape)
    }
}

/// Elements that share one parameter set: all of them, or one slice along axis 0.
fn row_len(shape: &[usize], granularity: Granularity) -> usize {
    match granularity {
        Granularity::PerTensor => shape.iter().product(),
        Granularity::PerChannel => shape.iter().skip(1).product(),
    }
}

/// The `(min, max)` of a slice widened to contain 0 (`(0, 0)` when empty); fails (naming `op`)
/// on inf or NaN.
pub fn finite_min_max(op: &'static str, shape: &[usize], x: &[f32]) -> Result<(f32, f32)> {
    let mut lo = 0.0f32;
    let mut hi = 0.0f32;
    let mut bad = false;
    for &v in x {
        bad |= !v.is_finite();
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if bad {
        let v = x
            .iter()
            .find(|v| !v.is_finite())
            .copied()
            .unwrap_or(f32::NAN);
        return Err(TensorError::invalid(
            op,
            shape,
            format!("cannot quantize a non-finite value ({v})"),
        ));
    }
    if x.is_empty() {
        return Ok((0.0, 0.0));
    }
    Ok((lo, hi))
}

/// Quantize `t` with parameters computed from its own range (per tensor, or per index of axis 0).
///
/// Fails (op `quantize`) on inf or NaN, or per channel on a 0-d tensor.
pub fn quantize(
    t: &Tensor,
    scheme: QuantScheme,
    granularity: Granularity,
) -> Result<QuantizedTensor> {
    let t = t.contiguous();
    let x = t.as_slice().unwrap_or(&[]);
    let shape = t.shape();
    if granularity == Granularity::PerChannel && shape.is_empty() {
        return Err(TensorError::invalid(
            "quantize",
            shape,
            "per-channel quantization needs at least one axis",
        ));
    }
    let row = row_len(shape, granularity).max(1);
    let params = x
        .chunks(row)
        .map(|r| {
            let (lo, hi) = finite_min_max("quantize", shape, r)?;
            QuantParams::from_min_max(lo, hi, scheme)
        })
        .collect::<Result<Vec<_>>>()?;
    let params = if params.is_empty() {
        vec![QuantParams::from_min_max(0.0, 0.0, scheme)?]
    } else {
        params
    };
    quantize_with(&t, &params, granularity)
}

/// Quantize `t` with given parameters: one set per tensor, or one per index of axis 0. Values
/// outside the range the parameters cover are clamped to the nearest code.
///
/// Fails (op `quantize`) on inf or NaN, or when the number of parameter sets does not fit.
pub fn quantize_with(
    t: &Tensor,
    params: &[QuantParams],
    granularity: Granularity,
) -> Result<QuantizedTensor> {
    let t = t.contiguous();
    let x = t.as_slice().unwrap_or(&[]);
    let shape = t.shape().to_vec();
    let want = match granularity {
        Granularity::PerTensor => 1,
        Granularity::PerChannel => shape.first().copied().unwrap_or(0).max(1),
    };
    if params.len() != want {
        return Err(TensorError::invalid(
            "quantize",
            &shape,
            format!(
                "{granularity:?} quantization needs {want} parameter set(s), got {}",
                params.len()
            ),
        ));
    }
    if let Some(p) = params
        .iter()
        .find(|p| !(p.scale.is_finite() && p.scale > 0.0))
    {
        return Err(TensorError::invalid(
            "quantize",
            &shape,
            format!("scale must be finite and positive, got {}", p.scale),
        ));
    }
    finite_min_max("quantize", &shape, x)?;
    let row = row_len(&shape, granularity).max(1);
    let mut data = Vec::with_capacity(x.len());
    for (i, chunk) in x.chunks(row).enumerate() {
        let p = params[if params.len() == 1 { 0 } else { i }];
        data.extend(chunk.iter().map(|&v| p.quantize_value(v)));
    }
    Ok(QuantizedTensor {
        data,
        shape,
        params: params.to_vec(),
        granularity,
    })
}

/// How a calibrated range is chosen from the observed values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibrationMethod {
    /// The largest magnitude seen (no clipping; one outlier costs resolution everywhere).
    MinMax,
    /// The given percentile of the magnitudes seen, e.g. `99.99` (outliers beyond it are clipped).
    Percentile(f32),
}

/// Bins of the magnitude histogram a [`RangeObserver`] keeps.
const OBSERVER_BINS: usize = 2048;

/// Watches activations over a few batches and proposes symmetric per-tensor parameters.
///
/// It keeps the running min and max and a histogram of `|x|` over `[0, range)` in
/// [`OBSERVER_BINS`] bins. When a larger value arrives the range doubles (pairs of bins merge), so
/// memory stays fixed and a percentile is known to within one bin (`range / 2048`).
#[derive(Clone, Debug)]
pub struct RangeObserver {
    min: f32,
    max: f32,
    range: f32,
    counts: Vec<u64>,
    total: u64,
}

impl Default for RangeObserver {
    fn default() -> Self {
        RangeObserver::new()
    }
}

impl RangeObserver {
    /// An observer that has seen nothing.
    pub fn new() -> RangeObserver {
        RangeObserver {
            min: 0.0,
            max: 0.0,
            range: 0.0,
            counts: vec![0; OBSERVER_BINS],
            total: 0,
        }
    }

    /// Record a batch. Fails (op `calibrate`) on inf or NaN, recording nothing.
    pub fn observe(&mut self, t: &Tensor) -> Result<()> {
        let t = t.contiguous();
        let x = t.as_slice().unwrap_or(&[]);
        let (lo, hi) = finite_min_max("calibrate", t.shape(), x)?;
        if x.is_empty() {
            return Ok(());
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        let top = hi.max(-lo);
        if self.range == 0.0 {
            self.range = if top > 0.0 { top * 1.0001 } else { 0.0 };
        }
        while top >= self.range && self.range > 0.0 {
            // Double the range: bins 2i and 2i+1 become bin i.
            for i in 0..OBSERVER_BINS / 2 {
                self.counts[i] = self.counts[2 * i] + self.counts[2 * i + 1];
            }
            self.counts[OBSERVER_BINS / 2..].fill(0);
            self.range *= 2.0;
        }
        let per_bin = if self.range > 0.0 {
            OBSERVER_BINS as f32 / self.range
        } else {
            0.0
        };
        for &v in x {
            let bin = ((v.abs() * per_bin) as usize).min(OBSERVER_BINS - 1);
            self.counts[bin] += 1;
        }
        self.total += x.len() as u64;
        Ok(())
    }

    /// The `(min, max)` seen so far, widened to contain 0 like every quantization range
    /// (`(0, 0)` before any value).
    pub fn min_max(&self) -> (f32, f32) {
        (self.min, self.max)
    }

    /// The number of values seen.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The magnitude below which `percent` % of the observed values lie (upper edge of its bin,
    /// never above the largest magnitude seen).
    pub fn percentile_magnitude(&self, percent: f32) -> f32 {
        let top = self.max.max(-self.min);
        if self.total == 0 || self.range == 0.0 {
            return top;
        }
        let want = (percent as f64 / 100.0 * self.total as f64).ceil() as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                let edge = (i + 1) as f32 * self.range / OBSERVER_BINS as f32;
                return edge.min(top);
            }
        }
        top
    }

    /// Symmetric per-tensor parameters for the observed values. Fails (op `calibrate`) when
    /// nothing was observed or the percentile is not in `(0, 100]`.
    pub fn params(&self, method: CalibrationMethod) -> Result<QuantParams> {
        if self.total == 0 {
            return Err(TensorError::invalid(
                "calibrate",
                &[],
                "no values observed: call observe() on a few batches first",
            ));
        }
        let top = match method {
            CalibrationMethod::MinMax => self.max.max(-self.min),
            CalibrationMethod::Percentile(p) => {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(TensorError::invalid(
                        "calibrate",
                        &[],
                        format!("percentile must be in (0, 100], got {p}"),
                    ));
                }
                self.percentile_magnitude(p)
            }
        };
        QuantParams::from_min_max(-top, top, QuantScheme::Symmetric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Symmetric and asymmetric int8 scales and zero points from a min/max range equal
    /// hand-computed values, including the degenerate range [0, 0].
    #[test]
    fn params_by_hand() {
        let p = QuantParams::from_min_max(-1.0, 2.54, QuantScheme::Symmetric).unwrap();
        assert!((p.scale - 0.02).abs() < 1e-8 && p.zero_point == 0);
        assert_eq!(p.quantize_value(2.54), 127);
        assert_eq!(p.quantize_value(-9.0), -127);
        let p = QuantParams::from_min_max(0.0, 2.55, QuantScheme::Asymmetric).unwrap();
        assert!((p.scale - 0.01).abs() < 1e-9);
        assert_eq!(p.zero_point, -128);
        assert_eq!(p.quantize_value(0.0), -128);
        assert_eq!(p.quantize_value(2.55), 127);
        let p = QuantParams::from_min_max(0.0, 0.0, QuantScheme::Asymmetric).unwrap();
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }
}
