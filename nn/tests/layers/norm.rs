//! LayerNorm, BatchNorm1d and BatchNorm2d: values, gradchecks, running statistics in train and
//! eval.

use crate::helpers::{assert_close, check, err_text, randn, t};
use autograd::Variable;
use nn::batch_norm::{BatchNorm1d, BatchNorm2d};
use nn::layer_norm::LayerNorm;
use nn::Module;
use tensor::Tensor;

/// LayerNorm normalises each row to the hand-computed (x - mean) / sqrt(var + eps), names weight
/// and bias, and passes gradcheck.
#[test]
fn layer_norm_values_and_gradcheck() {
    let ln = LayerNorm::new(4);
    let x = Variable::constant(t(&[1.0, 2.0, 3.0, 4.0, -1.0, -1.0, 1.0, 1.0], &[2, 4]));
    // row 1: mean 2.5, var 1.25; row 2: mean 0, var 1
    let s1 = 1.0 / (1.25f32 + 1e-5).sqrt();
    let s2 = 1.0 / (1.0f32 + 1e-5).sqrt();
    assert_close(
        &ln.forward(&x).unwrap().value(),
        &[-1.5 * s1, -0.5 * s1, 0.5 * s1, 1.5 * s1, -s2, -s2, s2, s2],
        1e-5,
    );
    let names: Vec<String> = ln.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["weight", "bias"]);
    assert_eq!(LayerNorm::new(4).without_bias().num_parameters(), 4);
    // gradcheck w.r.t. input, weight and bias (3-D input)
    check(
        |v| LayerNorm::from_weights(v[1].clone(), Some(v[2].clone()), 1e-5)?.forward(&v[0]),
        &[randn(&[2, 3, 5], 14), randn(&[5], 15), randn(&[5], 16)],
    );
    check(
        |v| LayerNorm::from_weights(v[1].clone(), None, 1e-5)?.forward(&v[0]),
        &[randn(&[3, 4], 17), randn(&[4], 18)],
    );
    let msg = err_text(ln.forward(&Variable::constant(Tensor::zeros(&[2, 5]))));
    assert!(msg.contains("LayerNorm") && msg.contains("[2, 5]"), "{msg}");
}

// ----- BatchNorm -----

/// BatchNorm1d and BatchNorm2d pass gradcheck in training (batch statistics) and in eval mode
/// (running statistics).
#[test]
fn batch_norm_gradcheck_train_and_eval() {
    let bn_train = |v: &[Variable], shape_2d: bool| -> nn::Result<Variable> {
        if shape_2d {
            let mut bn = BatchNorm2d::new(v[1].numel());
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.forward(&v[0])
        } else {
            let mut bn = BatchNorm1d::new(v[1].numel());
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.forward(&v[0])
        }
    };
    check(
        |v| bn_train(v, false),
        &[randn(&[5, 3], 19), randn(&[3], 20), randn(&[3], 21)],
    );
    check(
        |v| bn_train(v, false),
        &[randn(&[2, 3, 4], 22), randn(&[3], 23), randn(&[3], 24)],
    );
    check(
        |v| bn_train(v, true),
        &[randn(&[2, 2, 3, 2], 25), randn(&[2], 26), randn(&[2], 27)],
    );
    // eval mode uses running statistics: an affine map of x
    check(
        |v| {
            let mut bn = BatchNorm2d::new(2);
            bn.forward(&Variable::constant(randn(&[4, 2, 2, 2], 28)))?; // move the stats
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.eval();
            bn.forward(&v[0])
        },
        &[randn(&[2, 2, 2, 3], 29), randn(&[2], 30), randn(&[2], 31)],
    );
}

/// Batch norm standardises with the batch's biased variance in training, updates the running mean
/// and unbiased variance with momentum, and uses them in eval.
#[test]
fn batch_norm_running_statistics_train_vs_eval() {
    let mut bn = BatchNorm1d::new(2);
    // batch 1, (N=4, C=2): channel 0 = [1, 2, 3, 4], channel 1 = [2, 4, 6, 8]
    let b1 = t(&[1., 2., 2., 4., 3., 6., 4., 8.], &[4, 2]);
    let y = bn.forward(&Variable::constant(b1)).unwrap().value();
    // train output: each channel standardised with the biased variance (1.25 and 5)
    let s0 = 1.0 / (1.25f32 + 1e-5).sqrt();
    let s1 = 1.0 / (5.0f32 + 1e-5).sqrt();
    assert_close(
        &y,
        &[
            -1.5 * s0,
            -3.0 * s1,
            -0.5 * s0,
            -s1,
            0.5 * s0,
            s1,
            1.5 * s0,
            3.0 * s1,
        ],
        1e-5,
    );
    // running mean 0.9*0 + 0.1*[2.5, 5]; running var 0.9*1 + 0.1*[5/3, 20/3] (unbiased)
    assert_close(&bn.running_mean(), &[0.25, 0.5], 1e-6);
    assert_close(&bn.running_var(), &[0.9 + 0.5 / 3.0, 0.9 + 2.0 / 3.0], 1e-6);
    // batch 2: channel 0 = [0, 0, 6], channel 1 = [1, 1, 1] (mean 2 and 1, unbiased var 12 and 0)
    let b2 = t(&[0., 1., 0., 1., 6., 1.], &[3, 2]);
    bn.forward(&Variable::constant(b2)).unwrap();
    let rm = [0.9 * 0.25 + 0.2, 0.9 * 0.5 + 0.1];
    let rv = [0.9 * (0.9 + 0.5 / 3.0) + 1.2, 0.9 * (0.9 + 2.0 / 3.0) + 0.0];
    assert_close(&bn.running_mean(), &rm, 1e-6);
    assert_close(&bn.running_var(), &rv, 1e-6);
    assert_eq!(bn.num_batches_tracked(), 2);
    // eval: normalise with the running statistics, and leave them alone
    bn.eval();
    let x = t(&[1.0, -2.0], &[1, 2]);
    let y = bn.forward(&Variable::constant(x)).unwrap().value();
    let want = [
        (1.0 - rm[0]) / (rv[0] + 1e-5).sqrt(),
        (-2.0 - rm[1]) / (rv[1] + 1e-5).sqrt(),
    ];
    assert_close(&y, &want, 1e-5);
    assert_close(&bn.running_mean(), &rm, 1e-6);
    assert_eq!(bn.num_batches_tracked(), 2);
    // a batch of one value per channel cannot be normalised in training, but can in eval
    bn.train();
    let msg = err_text(bn.forward(&Variable::constant(Tensor::zeros(&[1, 2]))));
    assert!(
        msg.contains("BatchNorm1d") && msg.contains("more than 1 value"),
        "{msg}"
    );
    // buffers are in the state dict and load back
    let state = bn.state_dict();
    assert_eq!(state["running_mean"].to_vec(), bn.running_mean().to_vec());
    let fresh = BatchNorm1d::new(2);
    fresh.load_state_dict(&state).unwrap();
    assert_eq!(fresh.running_var().to_vec(), bn.running_var().to_vec());
    assert_eq!(fresh.num_batches_tracked(), 2);
    // wrong layouts
    let msg = err_text(BatchNorm2d::new(2).forward(&Variable::constant(Tensor::zeros(&[2, 2, 3]))));
    assert!(
        msg.contains("BatchNorm2d") && msg.contains("(N, C, H, W)"),
        "{msg}"
    );
    let msg = err_text(bn.forward(&Variable::constant(Tensor::zeros(&[4, 3]))));
    assert!(msg.contains("[4, 3]"), "{msg}");
}

/// BatchNorm2d in training gives each channel mean 0 and variance 1 over the batch and spatial
/// positions.
#[test]
fn batch_norm2d_per_channel_statistics() {
    let bn = BatchNorm2d::new(3);
    let x = Variable::constant(randn(&[4, 3, 5, 5], 32).mul_scalar(3.0).add_scalar(2.0));
    let y = bn.forward(&x).unwrap().value();
    for c in 0..3 {
        let v = y.narrow(1, c, 1).unwrap().to_vec();
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f32>() / n;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{c}: {mean} {var}"
        );
    }
}
