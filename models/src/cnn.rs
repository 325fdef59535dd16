//! `Cnn`: a convolutional network built from a config: a stack of convolution, BatchNorm,
//! activation and pooling layers (the *features*), a flatten, then `Linear` layers (the
//! *classifier*).
//!
//! | config | input | layers |
//! |---|---|---|
//! | [`CnnConfig::lenet5`] (default) | `1x28x28` | conv 6@5x5 pad 2, relu, maxpool 2, conv 16@5x5, relu, maxpool 2, flatten, 400 -> 120 -> 84 -> 10 |
//! | [`CnnConfig::tiny_digits`] | `1x8x8` | conv 8@3x3 pad 1, relu, maxpool 2, conv 16@3x3 pad 1, relu, maxpool 2, flatten, 64 -> 32 -> 10 |
//! | [`CnnConfig::cifar10`] | `3x32x32` | three stages of (conv 3x3 pad 1, BatchNorm, relu) x 1-2 + maxpool 2 (32, 64, 128 channels), flatten, 2048 -> 256 -> 10, dropout 0.3; target 75% test accuracy |
//!
//! The flatten size is not written in the config: [`Cnn::new`] runs the input shape through the
//! feature stack with the layers' own output-size formulas, so the same stack adapts to another
//! input size ([`CnnConfig::lenet5_for`]) and a stack that shrinks an image to nothing is an error
//! at construction, not a shape error in the middle of training.

use std::fmt;

use autograd::Variable;
use nn::batch_norm::BatchNorm2d;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::module::{prefixed, Module};
use nn::pool::{AvgPool2d, MaxPool2d};
use nn::NnError;
use tensor::TensorRng;

use crate::error::{ModelError, Result};
use crate::mlp::{Activation, SeededDropout};
use crate::profiler::ProfileLayer;

/// One layer of the feature stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CnnLayer {
    /// A square convolution with bias.
    Conv {
        /// Filters (output channels).
        out_channels: usize,
        /// Kernel side.
        kernel_size: usize,
        /// Step between windows.
        stride: usize,
        /// Zeros added on each side.
        padding: usize,
    },
    /// `BatchNorm2d` over the current channels.
    BatchNorm,
    /// The config's activation.
    Act,
    /// Max pooling with a square window (stride = window).
    MaxPool(usize),
    /// Average pooling with a square window (stride = window).
    AvgPool(usize),
}

impl CnnLayer {
    /// A stride-1 convolution with `padding` zeros on each side.
    pub fn conv(out_channels: usize, kernel_size: usize, padding: usize) -> CnnLayer {
        CnnLayer::Conv {
            out_channels,
            kernel_size,
            stride: 1,
            padding,
        }
    }

    /// One `3x3 conv (same padding) -> activation -> 2x2 max pool` block per width: the
    /// feature stack of the small-image networks (each block halves the image side).
    pub fn conv_pool_blocks(widths: &[usize]) -> Vec<CnnLayer> {
        widths
            .iter()
            .flat_map(|&c| [CnnLayer::conv(c, 3, 1), CnnLayer::Act, CnnLayer::MaxPool(2)])
            .collect()
    }
}

/// Everything that defines a [`Cnn`].
#[derive(Clone, Debug, PartialEq)]
pub struct CnnConfig {
    /// `[C, H, W]` of one input image.
    pub input_shape: [usize; 3],
    /// The feature stack, applied in order.
    pub features: Vec<CnnLayer>,
    /// Widths of the hidden `Linear` layers after the flatten.
    pub hidden: Vec<usize>,
    /// Output logits.
    pub num_classes: usize,
    /// The nonlinearity of `Act` layers and between classifier layers.
    pub activation: Activation,
    /// Dropout before each classifier layer but the first (0: none).
    pub dropout: f32,
    /// Seeds the weights and the dropout masks.
    pub seed: u64,
}

impl Default for CnnConfig {
    /// LeNet-5 for `1x28x28` images (MNIST).
    fn default() -> Self {
        CnnConfig::lenet5()
    }
}

impl CnnConfig {
    /// LeNet-5 for MNIST: `1x28x28`, 10 classes, 61,706 parameters.
    pub fn lenet5() -> CnnConfig {
        CnnConfig::lenet5_for([1, 28, 28], 10)
    }

    /// The LeNet-5 stack for another input shape or class count (the flatten size follows).
    pub fn lenet5_for(input_shape: [usize; 3], num_classes: usize) -> CnnConfig {
        CnnConfig {
            input_shape,
            features: vec![
                CnnLayer::conv(6, 5, 2),
                CnnLayer::Act,
                CnnLayer::MaxPool(2),
                CnnLayer::conv(16, 5, 0),
                CnnLayer::Act,
                CnnLayer::MaxPool(2),
            ],
            hidden: vec![120, 84],
            num_classes,
            activation: Activation::ReLU,
            dropout: 0.0,
            seed: tensor::DEFAULT_SEED,
        }
    }

    /// A small net for the `1x8x8` digits (TinyDigits, scikit-learn digits).
    pub fn tiny_digits() -> CnnConfig {
        CnnConfig {
            input_shape: [1, 8, 8],
            features: CnnLayer::conv_pool_blocks(&[8, 16]),
            hidden: vec![32],
            num_classes: 10,
            activation: Activation::ReLU,
            dropout: 0.0,
            seed: tensor::DEFAULT_SEED,
        }
    }

    /// A VGG-style net with BatchNorm for CIFAR-10 (`3x32x32`); the target is 75% test accuracy.
    pub fn cifar10() -> CnnConfig {
        use CnnLayer::{Act, BatchNorm, MaxPool};
        let block = |c: usize| [CnnLayer::conv(c, 3, 1), BatchNorm, Act];
        let mut features = Vec::new();
        features.extend(block(32));
        features.extend(block(32));
        features.push(MaxPool(2));
        features.extend(block(64));
        features.extend(block(64));
        features.push(MaxPool(2));
        features.extend(block(128));
        features.push(MaxPool(2));
        CnnConfig {
            input_shape: [3, 32, 32],
            features,
            hidden: vec![256],
            num_classes: 10,
            activation: Activation::ReLU,
            dropout: 0.3,
            seed: tensor::DEFAULT_SEED,
        }
    }

    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> CnnConfig {
        self.seed = seed;
        self
    }

    /// Set the classifier dropout.
    pub fn dropout(mut self, p: f32) -> CnnConfig {
        self.dropout = p;
        self
    }

    /// Set the activation.
    pub fn activation(mut self, activation: Activation) -> CnnConfig {
        self.activation = activation;
        self
    }
}

enum Feature {
    Conv(Conv2d),
    BatchNorm(BatchNorm2d),
    Act(Activation),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
}

impl Feature {
    fn forward(&self, x: &Variable) -> nn::Result<Variable> {
        match self {
            Feature::Conv(l) => l.forward(x),
            Feature::BatchNorm(l) => l.forward(x),
            Feature::Act(a) => a.apply(x),
            Feature::MaxPool(l) => l.forward(x),
            Feature::AvgPool(l) => l.forward(x),
        }
    }

    fn module(&self) -> Option<&dyn Module> {
        match self {
            Feature::Conv(l) => Some(l),
            Feature::BatchNorm(l) => Some(l),
            _ => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Feature::Conv(l) => {
                let c = l.config();
                format!(
                    "Conv2d({} -> {}, {}x{}, stride {}, pad {})",
                    c.in_channels,
                    c.out_channels,
                    c.kernel_size.0,
                    c.kernel_size.1,
                    c.stride.0,
                    c.padding.0
                )
            }
            Feature::BatchNorm(l) => format!("BatchNorm2d({})", l.weight().numel()),
            Feature::Act(a) => a.name().to_string(),
            Feature::MaxPool(l) => format!("MaxPool2d({})", l.config.kernel_size.0),
            Feature::AvgPool(l) => format!("AvgPool2d({})", l.config.kernel_size.0),
        }
    }
}

/// A convolutional classifier: `(N, C, H, W)` images to `(N, num_classes)` logits. Parameters are
/// named `features.{i}.*` (by position in the stack, like PyTorch's `nn.Sequential`) and
/// `classifier.{j}.*`.
pub struct Cnn {
    config: CnnConfig,
    features: Vec<Feature>,
    /// `[C, H, W]` after each feature layer.
    shapes: Vec<[usize; 3]>,
    classifier: Vec<Linear>,
    dropout: Option<SeededDropout>,
}

fn invalid(reason: String) -> ModelError {
    ModelError::Invalid { op: "Cnn", reason }
}

impl Cnn {
    /// Build the layers from `config` (weights from `config.seed`), computing every feature
    /// map's shape. Errors when a layer does not fit its input (a kernel larger than the map,
    /// a zero size) or the dropout is outside `[0, 1)`.
    pub fn new(config: CnnConfig) -> Result<Cnn> {
        let [c0, h0, w0] = config.input_shape;
        if c0 == 0 || h0 == 0 || w0 == 0 || config.num_classes == 0 || config.hidden.contains(&0) {
            return Err(invalid(format!(
                "input shape {:?}, hidden widths {:?} and num_classes {} must be positive",
                config.input_shape, config.hidden, config.num_classes
            )));
        }
        let mut rng = TensorRng::new(config.seed);
        let (mut c, mut h, mut w) = (c0, h0, w0);
        let mut features = Vec::with_capacity(config.features.len());
        let mut shapes = Vec::with_capacity(config.features.len());
        for (i, layer) in config.features.iter().enumerate() {
            let where_ = |e: String| {
                invalid(format!(
                    "features.{i} ({layer:?}) on a {c}x{h}x{w} map: {e}"
                ))
            };
            let feature = match *layer {
                CnnLayer::Conv {
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                } => {
                    let cfg = Conv2dConfig::new(c, out_channels, kernel_size)
                        .stride(stride)
                        .padding(padding);
                    let conv = Conv2d::new(cfg, &mut rng).map_err(|e| where_(e.to_string()))?;
                    (h, w) = cfg.output_size(h, w).map_err(|e| where_(e.to_string()))?;
                    c = out_channels;
                    Feature::Conv(conv)
                }
                CnnLayer::BatchNorm => Feature::BatchNorm(BatchNorm2d::new(c)),
                CnnLayer::Act => Feature::Act(config.activation),
                CnnLayer::MaxPool(k) | CnnLayer::AvgPool(k) => {
                    if k == 0 || k > h || k > w {
                        return Err(where_(format!("a {k}x{k} window does not fit")));
                    }
                    (h, w) = ((h - k) / k + 1, (w - k) / k + 1);
                    if matches!(layer, CnnLayer::MaxPool(_)) {
                        Feature::MaxPool(MaxPool2d::new(k))
                    } else {
                        Feature::AvgPool(AvgPool2d::new(k))
                    }
                }
            };
            features.push(feature);
            shapes.push([c, h, w]);
        }
        let mut widths = vec![c * h * w];
        widths.extend(&config.hidden);
        widths.push(config.num_classes);
        let classifier = widths
            .windows(2)
            .map(|p| Linear::new(p[0], p[1], true, &mut rng))
            .collect();
        let dropout = SeededDropout::new(config.dropout, rng.next_u64())?;
        Ok(Cnn {
            dropout: (config.dropout > 0.0).then_some(dropout),
            config,
            features,
            shapes,
            classifier,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CnnConfig {
        &self.config
    }

    /// The number of features entering the classifier (`C * H * W` after the stack).
    pub fn flat_features(&self) -> usize {
        self.classifier[0].in_features()
    }

    /// `[C, H, W]` after each feature layer.
    pub fn feature_shapes(&self) -> &[[usize; 3]] {
        &self.shapes
    }

    /// The layers in the order `forward` runs them, as the profiler reads them: `features.{i}`
    /// as configured, `flatten`, then `classifier.{j}` with the activation `act.{j}` between
    /// them. Each is the model's own module (BatchNorm in the model's mode, its running
    /// statistics restored by the profiler); dropout is left out, so a profile measures the
    /// deterministic path. The input is `(N, C, H, W)` images.
    pub fn profile_layers(&self) -> Vec<ProfileLayer<'_>> {
        let act = &self.config.activation;
        let mut stack = Vec::with_capacity(self.features.len() + 2 * self.classifier.len());
        for (i, feature) in self.features.iter().enumerate() {
            let name = format!("features.{i}");
            stack.push(match feature {
                Feature::Conv(l) => ProfileLayer::new(name, l),
                Feature::BatchNorm(l) => ProfileLayer::new(name, l).kind("BatchNorm2d"),
                Feature::Act(a) => ProfileLayer::new(name, a).kind(a.name()),
                Feature::MaxPool(l) => ProfileLayer::new(name, l).kind("MaxPool2d"),
                Feature::AvgPool(l) => ProfileLayer::new(name, l).kind("AvgPool2d"),
            });
        }
        stack.push(ProfileLayer::owned("flatten", Box::new(Flatten::new())));
        for (j, layer) in self.classifier.iter().enumerate() {
            if j > 0 {
                stack.push(ProfileLayer::new(format!("act.{}", j - 1), act).kind(act.name()));
            }
            stack.push(ProfileLayer::new(format!("classifier.{j}"), layer));
        }
        stack
    }

    /// The classifier's `Linear` layers.
    pub fn classifier(&self) -> &[Linear] {
        &self.classifier
    }

    /// The classifier's `Linear` layers, mutably (to quantize them in place).
    pub fn classifier_mut(&mut self) -> &mut [Linear] {
        &mut self.classifier
    }

    /// One line per layer (name, output shape, parameters) and the total, counted from the model.
    pub fn summary(&self) -> String {
        let count = |m: &dyn Module| -> usize { m.parameters().iter().map(|p| p.numel()).sum() };
        let shape = |s: &[usize]| format!("{s:?}");
        let mut out = format!(
            "{:<14} {:<40} {:<14} {:>9}\n",
            "layer", "type", "output", "params"
        );
        out += &format!(
            "{:<14} {:<40} {}\n",
            "input",
            "",
            shape(&self.config.input_shape)
        );
        for (i, (f, s)) in self.features.iter().zip(&self.shapes).enumerate() {
            let n = f.module().map_or(0, count);
            let name = format!("features.{i}");
            out += &format!("{name:<14} {:<40} {:<14} {n:>9}\n", f.name(), shape(s));
        }
        out += &format!(
            "{:<14} {:<40} {}\n",
            "flatten",
            "",
            shape(&[self.flat_features()])
        );
        for (j, l) in self.classifier.iter().enumerate() {
            let name = format!("classifier.{j}");
            let kind = format!("Linear({} -> {})", l.in_features(), l.out_features());
            out += &format!(
                "{name:<14} {kind:<40} {:<14} {:>9}\n",
                shape(&[l.out_features()]),
                count(l)
            );
        }
        out += &format!("total {} parameters", self.num_parameters());
        out
    }
}

impl Module for Cnn {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        let [c, h, w] = self.config.input_shape;
        let shape = input.shape();
        let input = if shape.len() == 2 && shape[1] == c * h * w {
            // Flat samples (N, C*H*W): view them as images.
            input.reshape_to(&[shape[0], c, h, w])?
        } else if shape.len() == 4 && shape[1..] == [c, h, w] {
            input.clone()
        } else {
            return Err(NnError::Invalid {
                op: "Cnn",
                reason: format!(
                    "input must be (N, {c}, {h}, {w}) (or (N, {})), got shape {shape:?}",
                    c * h * w
                ),
            });
        };
        // HINT: run the feature layers in order, flatten to (N, C*H*W), then the classifier:
        // HINT: activation (then dropout) between Linear layers, none after the last.
        // BEGIN SOLUTION
        let mut x = input;
        for f in &self.features {
            x = f.forward(&x)?;
        }
        x = x.flatten(1, -1)?;
        for (j, layer) in self.classifier.iter().enumerate() {
            if j > 0 {
                x = self.config.activation.apply(&x)?;
                if let Some(d) = &self.dropout {
                    x = d.forward(&x)?;
                }
            }
            x = layer.forward(&x)?;
        }
        Ok(x)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut out = Vec::new();
        for (i, f) in self.features.iter().enumerate() {
            if let Some(m) = f.module() {
                out.extend(prefixed(&format!("features.{i}"), m.named_parameters()));
            }
        }
        for (j, l) in self.classifier.iter().enumerate() {
            out.extend(prefixed(&format!("classifier.{j}"), l.named_parameters()));
        }
        out
    }

    fn named_buffers(&self) -> Vec<(String, Variable)> {
        let mut out = Vec::new();
        for (i, f) in self.features.iter().enumerate() {
            if let Some(m) = f.module() {
                out.extend(prefixed(&format!("features.{i}"), m.named_buffers()));
            }
        }
        if let Some(d) = &self.dropout {
            out.extend(prefixed("dropout", d.named_buffers()));
        }
        out
    }

    fn set_training(&mut self, training: bool) {
        for f in &mut self.features {
            if let Feature::BatchNorm(b) = f {
                b.set_training(training);
            }
        }
        if let Some(d) = &mut self.dropout {
            d.set_training(training);
        }
    }
}

impl fmt::Debug for Cnn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cnn(input={:?}, {} feature layers, flatten={}, classifier={:?})",
            self.config.input_shape,
            self.features.len(),
            self.flat_features(),
            self.classifier
                .iter()
                .map(|l| l.out_features())
                .collect::<Vec<_>>()
        )
    }
}

impl fmt::Display for Cnn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self:?}")?;
        write!(f, "{}", self.summary())
    }
}
