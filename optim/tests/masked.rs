//! Grader tests for `Masked`: pruned weights stay exactly zero through any number of steps of
//! SGD with momentum, Adam and AdamW with weight decay, even when the wrapped optimizer's state
//! (momentum, moments) was built before pruning; the kept weights still train.

use autograd::Variable;
use optim::{Adam, AdamConfig, AdamW, Masked, Optimizer, Sgd, SgdConfig};
use tensor::Tensor;

const MASK: [f32; 6] = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];

fn weight() -> Variable {
    Variable::parameter(Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.3, -0.7, 1.5], &[2, 3]).unwrap())
}

fn mask() -> Vec<(String, Tensor)> {
    vec![(
        "w".into(),
        Tensor::from_vec(MASK.to_vec(), &[2, 3]).unwrap(),
    )]
}

/// A loss whose gradient pulls every weight (pruned ones included) towards 3.
fn backward_towards_three(w: &Variable) {
    let target = Variable::constant(Tensor::full(&[2, 3], 3.0));
    let d = w.sub(&target).unwrap();
    d.mul(&d).unwrap().sum_all().unwrap().backward().unwrap();
}

fn run(opt: &mut dyn Optimizer, w: &Variable, steps: usize) {
    for _ in 0..steps {
        opt.zero_grad();
        backward_towards_three(w);
        opt.step().unwrap();
    }
}

/// Train 20 steps unmasked (so momentum / moments are non-zero everywhere), then wrap with the
/// masks and train 100 more: pruned entries must be exactly 0 after every step, kept ones move.
fn check_masks_hold<O: Optimizer>(name: &str, build: impl Fn(Vec<(String, Variable)>) -> O) {
    let w = weight();
    let mut opt = build(vec![("w".into(), w.clone())]);
    run(&mut opt, &w, 20);
    let mut masked = Masked::new(opt, mask()).unwrap();
    let before = w.value().to_vec();
    for (v, m) in before.iter().zip(MASK) {
        if m == 0.0 {
            assert_eq!(*v, 0.0, "{name}: Masked::new prunes right away");
        }
    }
    for step in 0..100 {
        run(&mut masked, &w, 1);
        let now = w.value().to_vec();
        for (i, (v, m)) in now.iter().zip(MASK).enumerate() {
            if m == 0.0 {
                assert_eq!(
                    v.to_bits(),
                    0.0f32.to_bits(),
                    "{name}: pruned weight {i} is {v} after step {step}"
                );
            }
        }
    }
    let after = w.value().to_vec();
    for (i, m) in MASK.iter().enumerate() {
        if *m == 1.0 {
            // The optimum is 3 (a little less with weight decay): the kept weights got there.
            assert!(
                after[i] != before[i] && (after[i] - 3.0).abs() < 0.5,
                "{name}: kept weight {i} still trains ({} -> {})",
                before[i],
                after[i]
            );
        }
    }
    assert_eq!(masked.steps(), 120);
    assert_eq!(masked.num_masked(), 1);
}

/// Pruned (masked) weights stay exactly zero through many SGD steps with momentum, Nesterov and
/// weight decay, which would otherwise revive them.
#[test]
fn masks_hold_under_sgd_with_momentum_and_weight_decay() {
    check_masks_hold("Sgd", |p| {
        Sgd::new(
            p,
            SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 0.1,
                ..Default::default()
            },
        )
        .unwrap()
    });
    check_masks_hold("Sgd nesterov", |p| {
        Sgd::new(
            p,
            SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            },
        )
        .unwrap()
    });
}

/// Pruned weights stay exactly zero through many Adam and AdamW steps with weight decay, despite
/// their moment buffers.
#[test]
fn masks_hold_under_adam_and_adamw_with_weight_decay() {
    check_masks_hold("Adam", |p| {
        Adam::new(
            p,
            AdamConfig {
                lr: 0.05,
                weight_decay: 0.01,
                ..Default::default()
            },
        )
        .unwrap()
    });
    check_masks_hold("AdamW", |p| {
        AdamW::new(
            p,
            AdamConfig {
                lr: 0.05,
                weight_decay: 0.1,
                ..AdamConfig::adamw()
            },
        )
        .unwrap()
    });
}

/// The control that shows why the weights are masked after the step too: masking only the
/// gradient leaves the momentum built before pruning, which moves a zeroed weight.
#[test]
fn masking_only_the_gradient_is_not_enough() {
    let w = weight();
    let mut opt = Sgd::new(
        vec![("w".into(), w.clone())],
        SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    run(&mut opt, &w, 20);
    w.update_data(|v| {
        for (v, m) in v.iter_mut().zip(MASK) {
            *v *= m;
        }
    })
    .unwrap();
    opt.zero_grad();
    backward_towards_three(&w);
    w.update_grad(|g| {
        for (g, m) in g.iter_mut().zip(MASK) {
            *g *= m;
        }
    });
    opt.step().unwrap();
    assert_ne!(
        w.value().to_vec()[1],
        0.0,
        "momentum moved the zeroed weight"
    );
}

/// A Masked optimizer reports the wrapped optimizer's name, learning rate, parameters and state,
/// forwards set_lr, and keeps its missing-gradient check.
#[test]
fn masked_delegates_to_the_wrapped_optimizer() {
    let w = weight();
    let b = Variable::parameter(Tensor::zeros(&[3]));
    let opt = Sgd::new(
        vec![("w".into(), w.clone()), ("b".into(), b.clone())],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut masked = Masked::new(opt, mask()).unwrap();
    assert_eq!(masked.name(), "Sgd");
    assert_eq!(masked.lr(), 0.1);
    masked.set_lr(0.5);
    assert_eq!(masked.inner().lr(), 0.5);
    assert_eq!(masked.named_parameters().len(), 2);
    assert_eq!(masked.state_dict().optimizer, "Sgd");
    // The wrapped optimizer's missing-gradient check still runs.
    let e = masked.step().unwrap_err().to_string();
    assert!(e.contains("'w'") && e.contains("'b'"), "{e}");
}

/// A mask naming no parameter, of the wrong shape, or with values other than 0 and 1 is refused
/// with a message naming it.
#[test]
fn masked_refuses_bad_masks() {
    let build = || {
        Sgd::new(
            vec![("w".into(), weight())],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let e = Masked::new(build(), vec![("v".to_string(), Tensor::ones(&[2, 3]))])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("mask 'v' names no parameter of the Sgd optimizer"),
        "{e}"
    );
    let e = Masked::new(build(), vec![("w".to_string(), Tensor::ones(&[3, 2]))])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("mask 'w' has shape [3, 2] but the parameter has shape [2, 3]"),
        "{e}"
    );
    let e = Masked::new(build(), vec![("w".to_string(), Tensor::full(&[2, 3], 0.5))])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("only 0.0 and 1.0"), "{e}");
}
