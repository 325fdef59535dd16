//! Pooling: summarise each window of every channel by one number, shrinking feature maps and
//! making them tolerant to small shifts.
//!
//! - [`MaxPool2d`] keeps each window's maximum; the gradient goes to that one element.
//! - [`AvgPool2d`] keeps each window's mean (zero padding counts in the divisor, PyTorch's
//!   default); the gradient is shared equally by the window.
//! - [`AdaptiveAvgPool2d`] picks its window from the input size so the output has a fixed size;
//!   `1 x 1` (global average pooling, the head of most modern CNNs) is the mean over `H` and `W`.
//!
//! Output size: `floor((H + 2 p - k) / s) + 1`; the stride defaults to the kernel size.

use autograd::Variable;

use crate::conv::IntoPair;
use crate::error::{NnError, Result};
use crate::module::Module;

fn check_nchw(layer: &'static str, input: &Variable) -> Result<()> {
    if input.ndim() != 4 {
        return Err(NnError::Invalid {
            op: layer,
            reason: format!("input must be (N, C, H, W), got shape {:?}", input.shape()),
        });
    }
    Ok(())
}

/// Window size, stride and padding of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Window `(kh, kw)`.
    pub kernel_size: (usize, usize),
    /// Step between windows (defaults to the kernel size).
    pub stride: (usize, usize),
    /// Padding on each side (at most half the kernel).
    pub padding: (usize, usize),
}

impl PoolConfig {
    fn new(kernel_size: (usize, usize)) -> PoolConfig {
        PoolConfig {
            kernel_size,
            stride: kernel_size,
            padding: (0, 0),
        }
    }
}

/// Max pooling of `(N, C, H, W)` with the window, stride and padding of `config`.
pub fn max_pool2d(x: &Variable, config: &PoolConfig) -> Result<Variable> {
    // HINT: Variable::max_pool2d takes the maximum of each kernel window and sends its gradient to
    // HINT: that element.
    // BEGIN SOLUTION
    let c = config;
    Ok(x.max_pool2d(c.kernel_size, c.stride, c.padding)?)
    // END SOLUTION
}

/// Average pooling of `(N, C, H, W)` with the window, stride and padding of `config`.
pub fn avg_pool2d(x: &Variable, config: &PoolConfig) -> Result<Variable> {
    // HINT: Variable::avg_pool2d takes the mean of each kernel window (padding counts as zeros).
    // BEGIN SOLUTION
    let c = config;
    Ok(x.avg_pool2d(c.kernel_size, c.stride, c.padding)?)
    // END SOLUTION
}

/// Average pooling of `(N, C, H, W)` to `(N, C, oh, ow)`, where `oh` divides `H` and `ow`
/// divides `W` (checked by the caller).
fn adaptive_avg_pool2d(x: &Variable, (oh, ow): (usize, usize)) -> Result<Variable> {
    // HINT: 1x1 is a mean over H and W; otherwise windows of H/oh by W/ow, stride = window.
    // BEGIN SOLUTION
    if (oh, ow) == (1, 1) {
        return Ok(x.mean(3, true)?.mean(2, true)?);
    }
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let kernel = (h / oh, w / ow);
    Ok(x.avg_pool2d(kernel, kernel, (0, 0))?)
    // END SOLUTION
}

macro_rules! pool_layer {
    ($name:ident, $method:ident, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Window, stride and padding.
            pub config: PoolConfig,
        }

        impl $name {
            /// Non-overlapping windows of `kernel_size` (stride = kernel size, no padding).
            pub fn new(kernel_size: impl IntoPair) -> $name {
                $name {
                    config: PoolConfig::new(kernel_size.into_pair()),
                }
            }

            /// Set the stride.
            pub fn stride(mut self, stride: impl IntoPair) -> $name {
                self.config.stride = stride.into_pair();
                self
            }

            /// Set the padding.
            pub fn padding(mut self, padding: impl IntoPair) -> $name {
                self.config.padding = padding.into_pair();
                self
            }
        }

        impl Module for $name {
            fn forward(&self, input: &Variable) -> Result<Variable> {
                check_nchw(stringify!($name), input)?;
                $method(input, &self.config)
            }

            fn named_parameters(&self) -> Vec<(String, Variable)> {
                Vec::new()
            }
        }
    };
}

pool_layer!(
    MaxPool2d,
    max_pool2d,
    "Max pooling over `(N, C, H, W)` (padding never wins: it counts as `-inf`)."
);
pool_layer!(
    AvgPool2d,
    avg_pool2d,
    "Average pooling over `(N, C, H, W)` (zero padding counts in the divisor)."
);

/// Average pooling to a fixed output size: `(N, C, H, W) -> (N, C, oh, ow)`. The `1 x 1` case is
/// the mean over `H` and `W`; other sizes need `H % oh == 0` and `W % ow == 0` (windows of
/// `H / oh` by `W / ow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    /// The output size `(oh, ow)`.
    pub output_size: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pool to `output_size` (e.g. `1` for global average pooling).
    pub fn new(output_size: impl IntoPair) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d {
            output_size: output_size.into_pair(),
        }
    }
}

impl Default for AdaptiveAvgPool2d {
    /// Global average pooling (`1 x 1`).
    fn default() -> Self {
        AdaptiveAvgPool2d::new(1)
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        check_nchw("AdaptiveAvgPool2d", input)?;
        let shape = input.shape();
        let (h, w) = (shape[2], shape[3]);
        let (oh, ow) = self.output_size;
        if oh == 0 || ow == 0 || !h.is_multiple_of(oh) || !w.is_multiple_of(ow) {
            return Err(NnError::Invalid {
                op: "AdaptiveAvgPool2d",
                reason: format!(
                    "output size ({oh}, {ow}) must be positive and divide the input size \
                     ({h}, {w}) of shape {shape:?}"
                ),
            });
        }
        adaptive_avg_pool2d(input, (oh, ow))
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}
