//! Dropout statistics and scaling, and the embedding lookup with its gradient and range check.

use crate::helpers::{assert_close, check, err_text, randn, t};
use autograd::Variable;
use nn::activation::Tanh;
use nn::dropout::Dropout;
use nn::embedding::Embedding;
use nn::linear::Linear;
use nn::sequential::Sequential;
use nn::Module;
use tensor::{Tensor, TensorRng};

/// Dropout zeroes about a fraction p of the elements, scales the rest by 1 / (1 - p), and is the
/// identity in eval mode.
#[test]
fn dropout_statistics_scaling_and_eval() {
    let p = 0.3;
    let n = 100_000;
    let drop = Dropout::new(p, 42).unwrap();
    let x = Variable::parameter(Tensor::ones(&[n]));
    let y = drop.forward(&x).unwrap();
    let v = y.value().to_vec();
    let zeros = v.iter().filter(|&&e| e == 0.0).count() as f64 / n as f64;
    assert!((zeros - p as f64).abs() < 0.01, "fraction zeroed {zeros}");
    let scale = 1.0 / (1.0 - p);
    assert!(v.iter().all(|&e| e == 0.0 || (e - scale).abs() < 1e-6));
    let mean = v.iter().map(|&e| e as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.02, "expected value kept: {mean}");
    // the gradient is the mask itself
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), v);
    // same seed, same mask; another seed, another one
    let again = Dropout::new(p, 42).unwrap().forward(&x).unwrap().value();
    assert_eq!(again.to_vec(), v);
    let other = Dropout::new(p, 43).unwrap().forward(&x).unwrap().value();
    assert_ne!(other.to_vec(), v);
    // successive calls draw new masks
    assert_ne!(drop.forward(&x).unwrap().value().to_vec(), v);
    // eval: identity
    let mut drop = drop;
    drop.eval();
    assert!(!drop.is_training());
    assert_eq!(drop.forward(&x).unwrap().value(), x.value());
    // p = 0 is the identity, p outside [0, 1) an error
    let zero = Dropout::new(0.0, 1).unwrap().forward(&x).unwrap();
    assert_eq!(zero.value(), x.value());
    for bad in [1.0, -0.1, 1.5, f32::NAN] {
        let msg = Dropout::new(bad, 0).unwrap_err().to_string();
        assert!(msg.contains("Dropout") && msg.contains("[0, 1)"), "{msg}");
    }
}

/// Dropout with a fixed mask and a Linear-Tanh-Linear chain pass gradcheck for inputs and
/// parameters.
#[test]
fn dropout_and_sequential_gradcheck() {
    // a dropout layer rebuilt from the same seed draws the same mask on every call, so finite
    // differences see one fixed function
    check(
        |v| Dropout::new(0.4, 3)?.forward(&v[0]),
        &[randn(&[4, 5], 50)],
    );
    // a chain, w.r.t. its input and both layers' parameters
    check(
        |v| {
            Sequential::new()
                .add(Linear::from_weights(v[1].clone(), Some(v[2].clone()))?)
                .add(Tanh)
                .add(Linear::from_weights(v[3].clone(), None)?)
                .forward(&v[0])
        },
        &[
            randn(&[3, 4], 51),
            randn(&[5, 4], 52),
            randn(&[5], 53),
            randn(&[2, 5], 54),
        ],
    );
}

// ----- Embedding -----

/// An embedding returns the looked-up rows, accumulates one gradient per use of a row (none for
/// unused rows), and refuses an id out of range.
#[test]
fn embedding_lookup_gradient_and_range_check() {
    let weight = t(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0], &[4, 2]);
    let emb = Embedding::from_weight(Variable::parameter(weight)).unwrap();
    let y = emb.forward_ids(&[2, 0, 2, 3, 1, 2], &[2, 3]).unwrap();
    assert_eq!(y.shape(), vec![2, 3, 2]);
    assert_close(
        &y.value(),
        &[20., 21., 0., 1., 20., 21., 30., 31., 10., 11., 20., 21.],
        0.0,
    );
    // a row used three times gets three contributions; an unused row none
    y.sum_all().unwrap().backward().unwrap();
    assert_close(
        &emb.weight.grad().unwrap(),
        &[1., 1., 1., 1., 3., 3., 1., 1.],
        0.0,
    );
    // a one-dimensional shape
    assert_close(
        &emb.forward_ids(&[3, 1], &[2]).unwrap().value(),
        &[30., 31., 10., 11.],
        0.0,
    );
    // out of range: the id, its position and the vocabulary size are named
    let msg = err_text(emb.forward_ids(&[1, 2, 3, 7], &[2, 2]));
    assert!(
        msg.contains("token id 7")
            && msg.contains("position 3")
            && msg.contains("[1, 1]")
            && msg.contains("vocabulary of 4"),
        "{msg}"
    );
    // floats are not ids: the Module path points to the typed lookup
    let msg = err_text(emb.forward(&Variable::constant(t(&[1.0], &[1]))));
    assert!(msg.contains("forward_ids"), "{msg}");
    assert!(emb.forward_ids(&[1, 2, 3], &[2, 2]).is_err());
    // gradcheck w.r.t. the table
    check(
        |v| Embedding::from_weight(v[0].clone())?.forward_ids(&[1, 0, 1, 2], &[2, 2]),
        &[randn(&[3, 4], 13)],
    );
    // init: N(0, 1)
    let big = Embedding::new(100, 100, &mut TensorRng::new(3));
    let v = big.weight.value().to_vec();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f32>() / v.len() as f32;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
}
