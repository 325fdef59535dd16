//! Sequential: parameter names, forward, train/eval modes, and state-dict round trips and errors.

use crate::helpers::randn;
use autograd::Variable;
use nn::activation::ReLU;
use nn::batch_norm::BatchNorm1d;
use nn::dropout::Dropout;
use nn::linear::Linear;
use nn::sequential::Sequential;
use nn::Module;
use std::collections::BTreeMap;
use tensor::{Tensor, TensorRng};

fn mlp(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Linear::new(4, 8, true, &mut rng))
        .add(ReLU)
        .add(Dropout::new(0.5, seed).unwrap())
        .add(Linear::new(8, 3, true, &mut rng))
}

/// Sequential names parameters by position (0.weight, 3.bias), equals composing its layers by hand
/// in eval, turns dropout on in train, and zero_grad clears every gradient.
#[test]
fn sequential_names_forward_and_modes() {
    let mut model = mlp(1);
    let names: Vec<String> = model.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    assert_eq!(model.num_parameters(), 4 * 8 + 8 + 8 * 3 + 3);
    assert_eq!(model.len(), 4);
    // eval: dropout off, forward deterministic and equal to composing the layers by hand
    model.eval();
    let x = Variable::constant(randn(&[5, 4], 2));
    let y1 = model.forward(&x).unwrap().value();
    let y2 = model.forward(&x).unwrap().value();
    assert_eq!(y1, y2);
    let mut h = x.clone();
    for i in [0, 1, 3] {
        h = model.get(i).unwrap().forward(&h).unwrap();
    }
    assert_eq!(h.value(), y1);
    // train: dropout on, so two passes differ
    model.train();
    let y3 = model.forward(&x).unwrap().value();
    let y4 = model.forward(&x).unwrap().value();
    assert_ne!(y3, y4);
    // gradients reach every parameter; zero_grad clears them
    let loss = model.forward(&x).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(model.parameters().iter().all(|p| p.grad().is_some()));
    model.zero_grad();
    assert!(model.parameters().iter().all(|p| p.grad().is_none()));
    // nested: names are prefixed at every level, buffers too
    let nested = Sequential::new()
        .add(Sequential::new().add(Linear::new(2, 2, false, &mut TensorRng::new(0))))
        .add(BatchNorm1d::new(2));
    let names: Vec<String> = nested.state_dict().into_keys().collect();
    assert_eq!(
        names,
        [
            "0.0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight"
        ]
    );
}

/// Loading one model's state_dict into another makes them compute the same function; missing,
/// unexpected or misshaped tensors are an error naming each, and a failed load changes nothing.
#[test]
fn state_dict_round_trip_and_errors_name_the_tensor() {
    let mut a = mlp(1);
    let mut b = mlp(2);
    a.eval();
    b.eval();
    let x = Variable::constant(randn(&[3, 4], 5));
    assert_ne!(
        a.forward(&x).unwrap().value(),
        b.forward(&x).unwrap().value()
    );
    b.load_state_dict(&a.state_dict()).unwrap();
    assert_eq!(
        a.forward(&x).unwrap().value(),
        b.forward(&x).unwrap().value()
    );

    let good = a.state_dict();
    let expect_err = |state: &BTreeMap<String, Tensor>, needles: &[&str]| {
        let before = b.state_dict();
        let msg = b.load_state_dict(state).unwrap_err().to_string();
        for n in needles {
            assert!(msg.contains(n), "'{n}' not in: {msg}");
        }
        assert_eq!(b.state_dict(), before, "a failed load must change nothing");
    };
    let mut missing = good.clone();
    missing.remove("3.bias");
    expect_err(&missing, &["missing", "3.bias"]);
    let mut unexpected = good.clone();
    unexpected.insert("4.weight".into(), Tensor::zeros(&[1]));
    expect_err(&unexpected, &["unexpected", "4.weight"]);
    let mut wrong_shape = good.clone();
    wrong_shape.insert("0.weight".into(), Tensor::zeros(&[4, 8]));
    expect_err(&wrong_shape, &["0.weight", "[4, 8]", "[8, 4]"]);
    // all problems at once
    let mut all = wrong_shape.clone();
    all.remove("3.bias");
    all.insert("extra".into(), Tensor::zeros(&[1]));
    expect_err(&all, &["0.weight", "3.bias", "extra"]);
}
