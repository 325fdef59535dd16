//! Conv2d and the pooling modules: output shapes, gradchecks, initialisation, a small CNN end to
//! end.

use crate::helpers::{assert_close, check, err_text, randn};
use autograd::Variable;
use nn::activation::ReLU;
use nn::batch_norm::BatchNorm2d;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use nn::sequential::Sequential;
use nn::Module;
use tensor::{Tensor, TensorRng};

/// The direct definition of a convolution, in f64.
fn conv_naive(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    c: &Conv2dConfig,
) -> (Vec<usize>, Vec<f32>) {
    let (xs, ws) = (x.shape(), w.shape());
    let (n, ch, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    let (oh, ow) = c.output_size(h, wd).unwrap();
    let mut out = Vec::new();
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.get(&[oi]).unwrap() as f64);
                    for ci in 0..ch {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * c.stride.0 + i * c.dilation.0) as isize
                                    - c.padding.0 as isize;
                                let ix = (xo * c.stride.1 + j * c.dilation.1) as isize
                                    - c.padding.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += x.get(&[ni, ci, iy as usize, ix as usize]).unwrap()
                                        as f64
                                        * w.get(&[oi, ci, i, j]).unwrap() as f64;
                                }
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
    }
    (vec![n, o, oh, ow], out)
}

/// Conv2d output shapes follow floor((H + 2p - d(k-1) - 1) / s) + 1 over many kernel, stride,
/// padding and dilation settings.
#[test]
fn conv2d_output_shapes_follow_the_formula() {
    let mut rng = TensorRng::new(0);
    // (H, W, kernel, stride, padding, dilation)
    let configs = [
        (8, 8, (3, 3), (1, 1), (0, 0), (1, 1)),
        (8, 8, (3, 3), (1, 1), (1, 1), (1, 1)),
        (9, 7, (3, 3), (2, 2), (1, 1), (1, 1)),
        (10, 10, (5, 3), (3, 2), (2, 0), (1, 1)),
        (12, 11, (3, 3), (1, 2), (2, 2), (2, 2)),
        (7, 9, (2, 4), (2, 3), (0, 1), (3, 1)),
        (5, 5, (5, 5), (1, 1), (0, 0), (1, 1)),
    ];
    for (h, w, k, s, p, d) in configs {
        let config = Conv2dConfig::new(2, 3, k).stride(s).padding(p).dilation(d);
        let conv = Conv2d::new(config, &mut rng).unwrap();
        let x = randn(&[2, 2, h, w], 33);
        let y = conv.forward(&Variable::constant(x.clone())).unwrap();
        let formula = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            (len + 2 * p - d * (k - 1) - 1) / s + 1
        };
        let want = [
            2,
            3,
            formula(h, k.0, s.0, p.0, d.0),
            formula(w, k.1, s.1, p.1, d.1),
        ];
        assert_eq!(y.shape(), want, "{config:?} on {h}x{w}");
        // and the values are the direct definition's
        let (shape, values) = conv_naive(
            &x,
            &conv.weight.value(),
            conv.bias.as_ref().map(|b| b.value()).as_ref(),
            &config,
        );
        assert_eq!(y.shape(), shape);
        assert_close(&y.value(), &values, 1e-4);
    }
    // a kernel larger than the padded input is an error, as are zero sizes
    let conv = Conv2d::new(Conv2dConfig::new(1, 1, 5), &mut rng).unwrap();
    assert!(conv
        .forward(&Variable::constant(Tensor::zeros(&[1, 1, 3, 3])))
        .is_err());
    assert!(Conv2d::new(Conv2dConfig::new(1, 1, 3).stride(0), &mut rng).is_err());
    assert!(Conv2d::new(Conv2dConfig::new(0, 1, 3), &mut rng).is_err());
    let msg = err_text(conv.forward(&Variable::constant(Tensor::zeros(&[1, 2, 8, 8]))));
    assert!(
        msg.contains("Conv2d") && msg.contains("[1, 2, 8, 8]"),
        "{msg}"
    );
}

/// Conv2d passes gradcheck for its input, weight and bias with stride, padding and dilation, and
/// without bias.
#[test]
fn conv2d_gradcheck_inputs_and_parameters() {
    let config = Conv2dConfig::new(2, 3, (3, 2))
        .stride((2, 1))
        .padding(1)
        .dilation((1, 2));
    check(
        |v| Conv2d::from_weights(config, v[1].clone(), Some(v[2].clone()))?.forward(&v[0]),
        &[
            randn(&[2, 2, 5, 6], 34),
            randn(&[3, 2, 3, 2], 35),
            randn(&[3], 36),
        ],
    );
    let no_bias = Conv2dConfig::new(1, 2, 2).bias(false);
    check(
        |v| Conv2d::from_weights(no_bias, v[1].clone(), None)?.forward(&v[0]),
        &[randn(&[1, 1, 4, 3], 37), randn(&[2, 1, 2, 2], 38)],
    );
}

/// Conv2d initialises within PyTorch's fan-in bound, names weight and bias, accepts an unbatched
/// (C, H, W) input like a batch of one, and refuses a weight without the config's bias.
#[test]
fn conv2d_init_unbatched_and_names() {
    let config = Conv2dConfig::new(3, 8, 5);
    let conv = Conv2d::new(config, &mut TensorRng::new(4)).unwrap();
    assert_eq!(conv.weight.shape(), vec![8, 3, 5, 5]);
    assert_eq!(conv.num_parameters(), 8 * 3 * 25 + 8);
    let bound = 1.0 / 75f32.sqrt() + 1e-6;
    let w = conv.weight.value();
    assert!(w.max_all() <= bound && w.min_all() >= -bound);
    let b = conv.bias.as_ref().unwrap().value();
    assert!(b.max_all() <= bound && b.min_all() >= -bound);
    // a single (C, H, W) image
    let img = randn(&[3, 6, 6], 39);
    let single = conv.forward(&Variable::constant(img.clone())).unwrap();
    assert_eq!(single.shape(), vec![8, 2, 2]);
    let batched = conv
        .forward(&Variable::constant(img.unsqueeze(0).unwrap()))
        .unwrap();
    assert_eq!(batched.value().squeeze(0).unwrap(), single.value());
    assert!(Conv2d::from_weights(
        config,
        Variable::parameter(Tensor::zeros(&[8, 3, 5, 5])),
        None
    )
    .is_err());
}

/// Max and average pooling modules give hand-computed values and shapes (overlapping windows too)
/// and pass gradcheck.
#[test]
fn pooling_values_shapes_and_gradients() {
    let x = Variable::constant(
        Tensor::arange(0.0, 16.0, 1.0)
            .unwrap()
            .reshape_to(&[1, 1, 4, 4])
            .unwrap(),
    );
    let max = MaxPool2d::new(2).forward(&x).unwrap();
    assert_close(&max.value(), &[5., 7., 13., 15.], 0.0);
    let avg = AvgPool2d::new(2).forward(&x).unwrap();
    assert_close(&avg.value(), &[2.5, 4.5, 10.5, 12.5], 0.0);
    let overlapping = MaxPool2d::new(3).stride(1).forward(&x).unwrap();
    assert_close(&overlapping.value(), &[10., 11., 14., 15.], 0.0);
    let padded = AvgPool2d::new(2).padding(1).forward(&x).unwrap();
    assert_eq!(padded.shape(), vec![1, 1, 3, 3]);
    assert_close(
        &padded.value().narrow(2, 0, 1).unwrap(),
        &[0.0, 0.75, 0.75],
        1e-6,
    );
    let global = AdaptiveAvgPool2d::new(1).forward(&x).unwrap();
    assert_eq!(global.shape(), vec![1, 1, 1, 1]);
    assert_close(&global.value(), &[7.5], 0.0);
    let two = AdaptiveAvgPool2d::new(2).forward(&x).unwrap();
    assert_eq!(two.value(), avg.value());
    assert!(AdaptiveAvgPool2d::new(3).forward(&x).is_err());
    assert!(MaxPool2d::new(2)
        .forward(&Variable::constant(Tensor::zeros(&[4, 4])))
        .is_err());
    // gradients (distinct values, so max has no ties)
    let input = randn(&[2, 3, 4, 5], 40);
    check(
        |v| MaxPool2d::new(2).stride(1).forward(&v[0]),
        std::slice::from_ref(&input),
    );
    check(
        |v| {
            AvgPool2d::new((2, 3))
                .stride((1, 2))
                .padding((1, 1))
                .forward(&v[0])
        },
        std::slice::from_ref(&input),
    );
    check(
        |v| AdaptiveAvgPool2d::default().forward(&v[0]),
        std::slice::from_ref(&input),
    );
    check(
        |v| AdaptiveAvgPool2d::new((2, 1)).forward(&v[0]),
        std::slice::from_ref(&input),
    );
}

/// A small conv-batchnorm-relu-pool-linear network gives the right output shape and a finite
/// non-zero gradient for every parameter.
#[test]
fn small_cnn_end_to_end_gradients() {
    let mut rng = TensorRng::new(9);
    let model = Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
        .add(BatchNorm2d::new(4))
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(4 * 4 * 4, 3, true, &mut rng));
    let x = Variable::constant(randn(&[2, 1, 8, 8], 41));
    let y = model.forward(&x).unwrap();
    assert_eq!(y.shape(), vec![2, 3]);
    y.sum_all().unwrap().powf(2.0).unwrap().backward().unwrap();
    for (name, p) in model.named_parameters() {
        let g = p.grad().unwrap_or_else(|| panic!("{name} got no gradient"));
        assert!(g.abs().max_all() > 0.0, "{name} has an all-zero gradient");
    }
}
