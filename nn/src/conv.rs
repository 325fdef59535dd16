//! `Conv2d`: a learned filter bank slid over images, computed as one matrix product.
//!
//! A convolution with weight `(O, C, kh, kw)` maps `(N, C, H, W)` to `(N, O, OH, OW)` with
//! `OH = floor((H + 2 p - d (kh - 1) - 1) / s) + 1` (and the same for the width). `im2col` copies
//! every receptive field into a column, so the whole layer is `weight (O, C*kh*kw) @ cols
//! (C*kh*kw, OH*OW)` per image: one GEMM, the fastest kernel we have. The backward is two more
//! GEMMs and `col2im` (see `autograd::ops::conv`).
//!
//! Initialisation (PyTorch's default): weight and bias `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
//! `fan_in = C * kh * kw` (`kaiming_uniform(a = sqrt(5))`).

use autograd::Variable;
use tensor::conv::Conv2dGeometry;
use tensor::TensorRng;

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// A size given for both axes (`3`) or per axis (`(3, 1)`).
pub trait IntoPair {
    /// `(height, width)`.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

/// Everything that defines a `Conv2d`: `Conv2dConfig::new(3, 16, 3).stride(2).padding(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output channels `O` (the number of filters).
    pub out_channels: usize,
    /// Kernel size `(kh, kw)`.
    pub kernel_size: (usize, usize),
    /// Step between windows (default 1).
    pub stride: (usize, usize),
    /// Zeros added on each side (default 0).
    pub padding: (usize, usize),
    /// Spacing of kernel taps (default 1, dense).
    pub dilation: (usize, usize),
    /// Whether the layer has a bias (default true).
    pub bias: bool,
}

impl Conv2dConfig {
    /// A stride-1, unpadded, dense convolution with bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl IntoPair) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            bias: true,
        }
    }

    /// Set the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Set the zero padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Set the dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The geometry handed to the convolution kernel.
    pub fn geometry(&self) -> Conv2dGeometry {
        Conv2dGeometry::new(self.kernel_size, self.stride, self.padding, self.dilation)
    }

    /// The output size `(OH, OW)` for an input of size `(h, w)`, or an error when the kernel
    /// does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        Ok(self.geometry().output_size(h, w)?)
    }

    fn validate(&self) -> Result<()> {
        let c = self;
        let zero = |p: (usize, usize)| p.0 == 0 || p.1 == 0;
        if c.in_channels == 0
            || c.out_channels == 0
            || zero(c.kernel_size)
            || zero(c.stride)
            || zero(c.dilation)
        {
            return Err(NnError::Invalid {
                op: "Conv2d",
                reason: format!(
                    "channels, kernel size, stride and dilation must be positive, got {c:?}"
                ),
            });
        }
        Ok(())
    }
}

/// A 2-D convolution layer over `(N, C, H, W)` (or a single `(C, H, W)` image).
pub struct Conv2d {
    /// Shape `(out_channels, in_channels, kh, kw)`.
    pub weight: Variable,
    /// Shape `(out_channels)`, if the layer has one.
    pub bias: Option<Variable>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// A layer with PyTorch's default initialisation drawn from `rng`. Errors on a zero
    /// channel count, kernel side, stride or dilation.
    pub fn new(config: Conv2dConfig, rng: &mut TensorRng) -> Result<Conv2d> {
        config.validate()?;
        let (kh, kw) = config.kernel_size;
        let shape = [config.out_channels, config.in_channels, kh, kw];
        let fan_in = config.in_channels * kh * kw;
        let weight = init::kaiming_uniform(rng, &shape, 5f32.sqrt());
        let bias = config
            .bias
            .then(|| init::fan_in_uniform(rng, &[config.out_channels], fan_in));
        Ok(Conv2d {
            weight: Variable::parameter(weight),
            bias: bias.map(Variable::parameter),
            config,
        })
    }

    /// A layer around given parameters; their shapes must match `config`.
    pub fn from_weights(
        config: Conv2dConfig,
        weight: Variable,
        bias: Option<Variable>,
    ) -> Result<Conv2d> {
        config.validate()?;
        let (kh, kw) = config.kernel_size;
        let want = [config.out_channels, config.in_channels, kh, kw];
        let bias_ok = match &bias {
            Some(b) => config.bias && b.shape() == [config.out_channels],
            None => !config.bias,
        };
        if weight.shape() != want || !bias_ok {
            return Err(NnError::Invalid {
                op: "Conv2d",
                reason: format!(
                    "expected weight {want:?} and {} for {config:?}, got weight {:?} and bias {:?}",
                    if config.bias {
                        format!("bias [{}]", config.out_channels)
                    } else {
                        "no bias".to_string()
                    },
                    weight.shape(),
                    bias.as_ref().map(|b| b.shape())
                ),
            });
        }
        Ok(Conv2d {
            weight,
            bias,
            config,
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
}

/// 2-D convolution of `x` `(N, C, H, W)` with `weight` `(O, C, kh, kw)` and optional `bias`
/// `(O)` (PyTorch's `F.conv2d`).
pub fn conv2d(
    x: &Variable,
    weight: &Variable,
    bias: Option<&Variable>,
    geometry: Conv2dGeometry,
) -> Result<Variable> {
    // HINT: Variable::conv2d is im2col + one GEMM per image, with its backward.
    // BEGIN SOLUTION
    Ok(x.conv2d(weight, bias, geometry)?)
    // END SOLUTION
}

impl Module for Conv2d {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        let shape = input.shape();
        let c = self.config.in_channels;
        if shape.len() == 3 {
            // One image: add the batch dim and take it away again.
            return self
                .forward(&input.unsqueeze(0)?)?
                .squeeze(0)
                .map_err(Into::into);
        }
        if shape.len() != 4 || shape[1] != c {
            return Err(NnError::Invalid {
                op: "Conv2d",
                reason: format!(
                    "input must be (N, {c}, H, W) or ({c}, H, W) for in_channels = {c}, got \
                     shape {shape:?}"
                ),
            });
        }
        conv2d(
            input,
            &self.weight,
            self.bias.as_ref(),
            self.config.geometry(),
        )
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            params.push(("bias".to_string(), b.clone()));
        }
        params
    }
}

impl std::fmt::Debug for Conv2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        write!(
            f,
            "Conv2d({}, {}, kernel_size={:?}, stride={:?}, padding={:?}, dilation={:?}, bias={})",
            c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation, c.bias
        )
    }
}
