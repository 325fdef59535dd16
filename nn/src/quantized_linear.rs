//! `QuantizedLinear`: a `Linear` for inference with int8 weights and int8 arithmetic.
//!
//! The weight `(out, in)` is quantized once, symmetric per output channel: row `j` becomes codes
//! `q[j, :]` in `[-127, 127]` and one scale `s_j = max|W[j, :]| / 127`. At run time each row of
//! the input is quantized the same way (dynamic quantization, PyTorch's `quantize_dynamic`): codes
//! `a[i, :]` and one scale `t_i`. Then, exactly in integers,
//!
//! `y[i, j] = t_i * s_j * sum_k a[i, k] * q[j, k] + bias_j`
//!
//! so the whole inner product runs in the int8 GEMM (`tensor::gemm_i8`, 4 bytes per 32-bit lane
//! per instruction) and only one multiply-add per output goes back to floats. Quantizing the
//! input, the product, and the dequantize-plus-bias are one fused pass per block of rows.
//!
//! Static quantization is the option for a fixed input distribution: a [`RangeObserver`] watches
//! a few calibration batches, and one per-tensor activation scale (from the min/max or a
//! percentile such as 99.99 %) replaces the per-row scales; values beyond it are clamped.
//!
//! The layer computes no gradients. Called when autograd would need a graph (grad mode on and the
//! input requires grad), it refuses with an error rather than returning a value cut off from the
//! graph.

use autograd::Variable;
use tensor::gemm::Parallelism;
use tensor::gemm_i8::{quantized_linear_with, ActivationQuant, I8Kernel, PackedI8Weights};
use tensor::quantize::{
    quantize, CalibrationMethod, Granularity, QuantParams, QuantScheme, RangeObserver,
};
use tensor::Tensor;

use crate::error::{NnError, Result};
use crate::linear::Linear;
use crate::module::Module;

/// A linear layer `(..., in) -> (..., out)` with int8 weights (per output channel, symmetric),
/// int8 activations (per row at run time, or one calibrated scale), `i32` accumulation and an
/// `f32` bias.
#[derive(Clone)]
pub struct QuantizedLinear {
    in_features: usize,
    out_features: usize,
    /// Codes `(out, in)` row-major, as given or computed (what a checkpoint stores).
    weight_i8: Vec<i8>,
    /// One weight scale per output row.
    scales: Vec<f32>,
    bias: Option<Tensor>,
    /// The codes in the kernel's layout, with scales and bias attached.
    packed: PackedI8Weights,
    /// Per-row (dynamic) or fixed (static) activation quantization.
    activation: ActivationQuant,
}

fn invalid(reason: impl Into<String>) -> NnError {
    NnError::Invalid {
        op: "QuantizedLinear",
        reason: reason.into(),
    }
}

impl QuantizedLinear {
    /// Quantize a trained `Linear` (its current weight and bias values).
    pub fn from_linear(linear: &Linear) -> Result<QuantizedLinear> {
        let bias = linear.bias.as_ref().map(Variable::value);
        QuantizedLinear::from_weight(&linear.weight.value(), bias)
    }

    /// Quantize a weight `(out, in)` per output channel (symmetric) and keep the `f32` bias `(out)`.
    /// Fails on a weight that is not 2-D, a mis-shaped bias, or inf/NaN values.
    pub fn from_weight(weight: &Tensor, bias: Option<Tensor>) -> Result<QuantizedLinear> {
        if weight.ndim() != 2 {
            return Err(invalid(format!(
                "weight must be (out, in), got shape {:?}",
                weight.shape()
            )));
        }
        let shape = [weight.shape()[0], weight.shape()[1]];
        let q = quantize(weight, QuantScheme::Symmetric, Granularity::PerChannel)?;
        let scales = q.params().iter().map(|p| p.scale).collect();
        QuantizedLinear::from_parts(q.into_data(), shape, scales, bias)
    }

    /// A layer from stored parts (a quantized checkpoint): codes `(out, in)` row-major, one
    /// positive scale per output row, an optional bias `(out)`. Every part is validated.
    pub fn from_parts(
        weight_i8: Vec<i8>,
        shape: [usize; 2],
        scales: Vec<f32>,
        bias: Option<Tensor>,
    ) -> Result<QuantizedLinear> {
        let [out_features, in_features] = shape;
        if weight_i8.len() != out_features * in_features {
            return Err(invalid(format!(
                "{} weight codes cannot fill shape {shape:?} ({} elements)",
                weight_i8.len(),
                out_features * in_features
            )));
        }
        if scales.len() != out_features {
            return Err(invalid(format!(
                "{} scales for weight shape {shape:?} (one per output row: {out_features})",
                scales.len()
            )));
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(invalid(format!(
                "weight scales must be finite and positive, got {s}"
            )));
        }
        let bias_values = match &bias {
            Some(b) if b.shape() != [out_features] => {
                return Err(invalid(format!(
                "bias shape {:?} does not match weight shape {shape:?} (expected [{out_features}])",
                b.shape()
            )))
            }
            Some(b) => {
                let v = b.to_vec();
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(invalid("bias holds inf or NaN"));
                }
                Some(v)
            }
            None => None,
        };
        let packed = PackedI8Weights::pack(&weight_i8, out_features, in_features)?
            .with_dequant(&scales, bias_values.as_deref())?;
        Ok(QuantizedLinear {
            in_features,
            out_features,
            weight_i8,
            scales,
            bias,
            packed,
            activation: ActivationQuant::Dynamic,
        })
    }

    /// The weight codes `(out, in)`, row-major.
    pub fn weight_i8(&self) -> &[i8] {
        &self.weight_i8
    }

    /// One weight scale per output row.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The `f32` bias `(out)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The size of each input's last dim.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The size of each output's last dim.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Bytes of the stored layer: 1 per weight, 4 per scale and bias value (and 4 for the static
    /// activation scale when set). About a quarter of the `f32` layer's `4 * (out * in + out)`.
    pub fn size_bytes(&self) -> usize {
        let static_scale = match self.activation {
            ActivationQuant::Static(_) => 4,
            ActivationQuant::Dynamic => 0,
        };
        self.weight_i8.len()
            + 4 * self.scales.len()
            + 4 * self.bias.as_ref().map_or(0, Tensor::numel)
            + static_scale
    }

    /// The `f32` weight the codes stand for (`q[j, k] * s_j`).
    pub fn dequantized_weight(&self) -> Result<Tensor> {
        // HINT: row j of codes times the scale of row j.
        // BEGIN SOLUTION
        let k = self.in_features.max(1);
        let w: Vec<f32> = self
            .weight_i8
            .chunks(k)
            .zip(&self.scales)
            .flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s))
            .collect();
        Ok(Tensor::from_vec(w, &[self.out_features, self.in_features])?)
        // END SOLUTION
    }

    /// How activations are quantized: per row at run time, or with one calibrated scale.
    pub fn activation(&self) -> ActivationQuant {
        self.activation
    }

    /// Use fixed symmetric activation parameters (static quantization), or per-row dynamic
    /// quantization again with `None`. Fails on asymmetric parameters (the int8 kernel takes
    /// symmetric activation codes).
    pub fn set_static_activation(&mut self, params: Option<QuantParams>) -> Result<()> {
        self.activation = match params {
            None => ActivationQuant::Dynamic,
            Some(p) if p.scheme == QuantScheme::Symmetric && p.zero_point == 0 => {
                if !(p.scale.is_finite() && p.scale > 0.0) {
                    return Err(invalid(format!(
                        "activation scale {} is not positive",
                        p.scale
                    )));
                }
                ActivationQuant::Static(p.scale)
            }
            Some(p) => {
                return Err(invalid(format!(
                    "static activation parameters must be symmetric (zero point 0), got {p:?}"
                )))
            }
        };
        Ok(())
    }

    /// Calibrate static activation quantization: observe the given input batches (each
    /// `(..., in)`), choose one symmetric scale by `method`, and use it from now on. Returns the
    /// parameters chosen.
    pub fn calibrate<'a>(
        &mut self,
        batches: impl IntoIterator<Item = &'a Tensor>,
        method: CalibrationMethod,
    ) -> Result<QuantParams> {
        let mut observer = RangeObserver::new();
        for x in batches {
            self.check_input(x.shape())?;
            observer.observe(x)?;
        }
        let params = observer.params(method)?;
        self.set_static_activation(Some(params))?;
        Ok(params)
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape.last() != Some(&self.in_features) {
            return Err(invalid(format!(
                "input of shape {shape:?} must end in in_features = {} (weight shape [{}, {}])",
                self.in_features, self.out_features, self.in_features
            )));
        }
        Ok(())
    }

    /// `x (..., in) -> (..., out)` with the fastest int8 kernel, threads allowed.
    pub fn forward_tensor(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(I8Kernel::best(), x, Parallelism::Threaded)
    }

    /// [`QuantizedLinear::forward_tensor`] with an explicit kernel and threading.
    pub fn forward_with(
        &self,
        kernel: I8Kernel,
        x: &Tensor,
        parallelism: Parallelism,
    ) -> Result<Tensor> {
        self.check_input(x.shape())?;
        let x = x.contiguous();
        let m = x.numel() / self.in_features.max(1);
        let values = x.as_slice().unwrap_or(&[]);
        let out = self.int8_rows(kernel, values, m, parallelism)?;
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.out_features;
        }
        Ok(Tensor::from_vec(out, &shape)?)
    }
}

impl QuantizedLinear {
    /// `m` rows of `in_features` floats through the int8 layer: `m * out_features` floats.
    fn int8_rows(
        &self,
        kernel: I8Kernel,
        x: &[f32],
        m: usize,
        parallelism: Parallelism,
    ) -> Result<Vec<f32>> {
        // HINT: one fused call does it all: quantize each row, multiply in int8, and dequantize
        // HINT: with (row scale x weight scale) plus the bias in the kernel's epilogue
        // HINT: (tensor::gemm_i8::quantized_linear_with with self.packed and self.activation).
        // BEGIN SOLUTION
        let mut out = vec![0.0f32; m * self.out_features];
        quantized_linear_with(
            kernel,
            x,
            m,
            &self.packed,
            self.activation,
            &mut out,
            parallelism,
        )?;
        Ok(out)
        // END SOLUTION
    }
}

/// Whether running an inference-only layer on `input` would silently cut a graph autograd needs.
pub(crate) fn refuse_under_grad(layer: &'static str, needs_graph: bool) -> Result<()> {
    if needs_graph {
        return Err(NnError::Invalid {
            op: layer,
            reason: "int8 inference computes no gradients: run it under no_grad, or on an input \
                     that does not require grad"
                .to_string(),
        });
    }
    Ok(())
}

impl Module for QuantizedLinear {
    /// The int8 forward; refuses when grad mode is on and `input` requires grad.
    fn forward(&self, input: &Variable) -> Result<Variable> {
        refuse_under_grad(
            "QuantizedLinear",
            autograd::is_grad_enabled() && input.requires_grad(),
        )?;
        Ok(Variable::constant(self.forward_tensor(&input.value())?))
    }

    /// None: the codes are not trainable.
    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}

impl std::fmt::Debug for QuantizedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantizedLinear(in_features={}, out_features={}, bias={}, activation={:?})",
            self.in_features,
            self.out_features,
            self.bias.is_some(),
            self.activation
        )
    }
}
