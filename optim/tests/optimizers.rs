//! Grader tests: optimizers converge, refuse missing gradients, apply their groups, and resume
//! bit-identically from a saved state.

use autograd::Variable;
use optim::schedule::{LrSchedule, WarmupCosine};
use optim::{
    Adam, AdamConfig, AdamW, OptimError, Optimizer, OptimizerState, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
use tensor::Tensor;

mod common;
use common::centered_momentum_rmsprop;

fn param(values: &[f32]) -> Variable {
    Variable::parameter(Tensor::from_vec(values.to_vec(), &[values.len()]).unwrap())
}

fn named(name: &str, v: &Variable) -> (String, Variable) {
    (name.to_string(), v.clone())
}

/// Every optimizer under test, built over `params` with settings that suit a smooth problem.
fn all_optimizers(params: &[(String, Variable)]) -> Vec<Box<dyn Optimizer>> {
    let p = || params.to_vec();
    vec![
        Box::new(
            Sgd::new(
                p(),
                SgdConfig {
                    lr: 0.1,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            Sgd::new(
                p(),
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            Adam::new(
                p(),
                AdamConfig {
                    lr: 0.05,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            Adam::new(
                p(),
                AdamConfig {
                    lr: 0.05,
                    amsgrad: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            AdamW::new(
                p(),
                AdamConfig {
                    lr: 0.05,
                    weight_decay: 0.0,
                    ..AdamConfig::adamw()
                },
            )
            .unwrap(),
        ),
        Box::new(
            RmsProp::new(
                p(),
                RmsPropConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            RmsProp::new(
                p(),
                RmsPropConfig {
                    lr: 0.005,
                    momentum: 0.5,
                    centered: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
    ]
}

/// Every optimizer (`sgd_update`, `adam_update`, `rmsprop_update`) minimises an ill-conditioned
/// quadratic `0.5 * sum(a * (w - c)^2)` through real backward passes.
#[test]
fn quadratic_converges() {
    let a = Variable::constant(Tensor::from_vec(vec![1.0, 3.0, 10.0, 0.5], &[4]).unwrap());
    let c = Variable::constant(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0], &[4]).unwrap());
    let w = param(&[0.0; 4]);
    let params = vec![named("w", &w)];
    for mut opt in all_optimizers(&params) {
        w.set_value(Tensor::zeros(&[4])).unwrap();
        let mut steps = 0;
        let mut decayed = false;
        loop {
            let d = w.sub(&c).unwrap();
            let loss = d
                .mul(&d)
                .unwrap()
                .mul(&a)
                .unwrap()
                .sum_all()
                .unwrap()
                .mul_scalar(0.5)
                .unwrap();
            opt.zero_grad();
            loss.backward().unwrap();
            opt.step().unwrap();
            steps += 1;
            // Adaptive methods hover at a distance ~lr: decay the rate once they are close.
            if steps == 600 && !decayed {
                let lr = opt.lr();
                opt.set_lr(lr * 0.05);
                decayed = true;
            }
            if steps == 1500 {
                break;
            }
        }
        let err = w
            .value()
            .to_vec()
            .iter()
            .zip(c.value().to_vec())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        println!("{}: max |w - c| = {err:.2e}", opt.name());
        assert!(
            err < 1e-4,
            "{} (lr {}): max |w - c| = {err} after {steps} steps",
            opt.name(),
            opt.lr()
        );
    }
}

/// Rosenbrock's valley `(1 - x)^2 + 100 (y - x^2)^2`: Adam reaches (1, 1) within 1e-2 from
/// (-1.5, 2), and SGD with momentum gets there too (with a smaller rate).
#[test]
fn rosenbrock_converges() {
    fn grad(x: f64, y: f64) -> [f32; 2] {
        [
            (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x)) as f32,
            (200.0 * (y - x * x)) as f32,
        ]
    }
    let run = |opt: &mut dyn Optimizer, xy: &Variable, steps: usize, schedule: &dyn LrSchedule| {
        xy.set_value(Tensor::from_vec(vec![-1.5, 2.0], &[2]).unwrap())
            .unwrap();
        for _ in 0..steps {
            opt.set_lr(schedule.lr_at(opt.steps()));
            let v = xy.value().to_vec();
            let g = grad(f64::from(v[0]), f64::from(v[1]));
            xy.set_grad(Some(Tensor::from_vec(g.to_vec(), &[2]).unwrap()))
                .unwrap();
            opt.step().unwrap();
        }
        let v = xy.value().to_vec();
        (v[0], v[1])
    };
    let xy = param(&[0.0, 0.0]);
    let params = vec![named("xy", &xy)];

    let mut adam = Adam::new(params.clone(), AdamConfig::default()).unwrap();
    let schedule = WarmupCosine::new(0.02, 100, 8000, 1e-4).unwrap();
    let (x, y) = run(&mut adam, &xy, 8000, &schedule);
    println!("Adam: ({x}, {y})");
    assert!(
        (x - 1.0).abs() < 1e-2 && (y - 1.0).abs() < 1e-2,
        "Adam ended at ({x}, {y})"
    );

    let mut sgd = Sgd::new(
        params,
        SgdConfig {
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    let schedule = WarmupCosine::new(4e-4, 10, 20000, 1e-5).unwrap();
    let (x, y) = run(&mut sgd, &xy, 20000, &schedule);
    println!("SGD + momentum: ({x}, {y})");
    assert!(
        (x - 1.0).abs() < 1e-2 && (y - 1.0).abs() < 1e-2,
        "SGD + momentum ended at ({x}, {y})"
    );
}

/// `ParamGroups::check_grads`: a parameter outside the loss's graph is an error that names it,
/// and nothing is updated; with `allow_unused` it is skipped.
#[test]
fn missing_gradient_is_named() {
    let used = param(&[1.0, 2.0]);
    let unused = param(&[3.0]);
    let params = vec![
        named("blocks.0.mlp.weight", &used),
        named("blocks.1.attn.qkv.weight", &unused),
    ];
    let mut opt = Adam::new(params.clone(), AdamConfig::default()).unwrap();
    used.mul(&used)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let err = opt.step().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Adam.step: parameter 'blocks.1.attn.qkv.weight' received no gradient: is it part of the loss's graph? \
         (build the optimizer with allow_unused to skip such parameters)"
    );
    assert!(
        matches!(err, OptimError::MissingGrad { ref names, .. } if names == &["blocks.1.attn.qkv.weight"])
    );
    assert_eq!(
        used.value().to_vec(),
        vec![1.0, 2.0],
        "a refused step must not change anything"
    );
    assert_eq!(opt.steps(), 0);

    for mut opt in [
        Box::new(
            Sgd::new(
                params.clone(),
                SgdConfig {
                    lr: 0.1,
                    allow_unused: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ) as Box<dyn Optimizer>,
        Box::new(
            Adam::new(
                params.clone(),
                AdamConfig {
                    allow_unused: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            RmsProp::new(
                params.clone(),
                RmsPropConfig {
                    allow_unused: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
    ] {
        opt.step().unwrap();
        assert_eq!(
            unused.value().to_vec(),
            vec![3.0],
            "{}: the unused parameter must not move",
            opt.name()
        );
        assert_ne!(
            used.value().to_vec(),
            vec![1.0, 2.0],
            "{}: the used parameter must move",
            opt.name()
        );
        let state = opt.state_dict();
        assert_eq!(
            state.param_steps["blocks.1.attn.qkv.weight"],
            0,
            "{}",
            opt.name()
        );
        assert_eq!(
            state.param_steps["blocks.0.mlp.weight"],
            1,
            "{}",
            opt.name()
        );
        used.set_value(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap())
            .unwrap();
    }

    // Frozen parameters (requires_grad false) are never required.
    let frozen = Variable::constant(Tensor::ones(&[2]));
    let mut opt = Sgd::new(
        vec![named("w", &used), named("frozen", &frozen)],
        SgdConfig::default(),
    )
    .unwrap();
    opt.step().unwrap();
}

/// Groups apply their own lr and weight decay; `set_lr` sets every group, `set_lr_factor` scales
/// each group's base rate.
#[test]
fn groups_apply_their_own_lr_and_decay() {
    let w = param(&[1.0, 1.0]);
    let b = param(&[1.0]);
    let groups = vec![
        ParamGroup::new(vec![named("w", &w)]).with_weight_decay(0.5),
        ParamGroup::new(vec![named("b", &b)]).with_lr(0.01),
    ];
    let mut opt = Sgd::with_groups(
        groups,
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    w.set_grad(Some(Tensor::ones(&[2]))).unwrap();
    b.set_grad(Some(Tensor::ones(&[1]))).unwrap();
    opt.step().unwrap();
    // w: 1 - 0.1 * (1 + 0.5 * 1) = 0.85; b: 1 - 0.01 * 1 = 0.99 (no decay: the default is 0).
    assert!(
        (w.value().to_vec()[0] - 0.85).abs() < 1e-7,
        "{:?}",
        w.value()
    );
    assert!(
        (b.value().to_vec()[0] - 0.99).abs() < 1e-7,
        "{:?}",
        b.value()
    );

    assert_eq!(opt.lr(), 0.1);
    opt.set_lr_factor(0.5);
    let lrs: Vec<f64> = opt.groups().groups().iter().map(|g| g.lr).collect();
    assert_eq!(lrs, vec![0.05, 0.005]);
    opt.set_lr(0.2);
    let lrs: Vec<f64> = opt.groups().groups().iter().map(|g| g.lr).collect();
    assert_eq!(lrs, vec![0.2, 0.2]);
    opt.groups_mut().groups_mut()[1].weight_decay = 0.25;
    assert_eq!(opt.groups().groups()[1].weight_decay, 0.25);

    // The usual split: AdamW decays the matrix but not the bias.
    let m = Variable::parameter(Tensor::ones(&[2, 2]));
    let bias = param(&[1.0, 1.0]);
    let groups =
        ParamGroup::split_decay(vec![named("fc.weight", &m), named("fc.bias", &bias)], 0.5);
    let mut opt = AdamW::with_groups(
        groups,
        AdamConfig {
            lr: 0.1,
            ..AdamConfig::adamw()
        },
    )
    .unwrap();
    m.set_grad(Some(Tensor::zeros(&[2, 2]))).unwrap();
    bias.set_grad(Some(Tensor::zeros(&[2]))).unwrap();
    opt.step().unwrap();
    // Zero gradients: only decoupled decay moves anything, p * (1 - 0.1 * 0.5).
    assert_eq!(m.value().to_vec(), vec![0.95; 4]);
    assert_eq!(bias.value().to_vec(), vec![1.0, 1.0]);
}

/// The memory cost of each optimizer's state, in floats per parameter.
#[test]
fn state_memory_per_parameter() {
    let w = Variable::parameter(Tensor::zeros(&[100, 10]));
    let params = vec![named("w", &w)];
    let n = 1000;
    let cases: Vec<(Box<dyn Optimizer>, usize)> = vec![
        (
            Box::new(Sgd::new(params.clone(), SgdConfig::default()).unwrap()),
            0,
        ),
        (
            Box::new(
                Sgd::new(
                    params.clone(),
                    SgdConfig {
                        momentum: 0.9,
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
            1,
        ),
        (
            Box::new(Adam::new(params.clone(), AdamConfig::default()).unwrap()),
            2,
        ),
        (
            Box::new(
                Adam::new(
                    params.clone(),
                    AdamConfig {
                        amsgrad: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
            3,
        ),
        (
            Box::new(AdamW::new(params.clone(), AdamConfig::adamw()).unwrap()),
            2,
        ),
        (
            Box::new(RmsProp::new(params.clone(), RmsPropConfig::default()).unwrap()),
            1,
        ),
        (Box::new(centered_momentum_rmsprop(params.clone())), 3),
    ];
    for (opt, per_param) in cases {
        assert_eq!(opt.state_numel(), per_param * n, "{}", opt.name());
        assert_eq!(opt.state_dict().numel(), per_param * n, "{}", opt.name());
    }
}

/// A deterministic, parameter-dependent gradient with a step-dependent wobble (like minibatch
/// noise), so a resumed run only matches if every moment and step count was restored.
fn fake_grad(values: &[f32], step: u64) -> Vec<f32> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let noise = (((step * 7919 + i as u64 * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.3;
            v * v * v - 0.5 * v + noise
        })
        .collect()
}

type Factory = fn(Vec<ParamGroup>) -> Box<dyn Optimizer>;

fn factories() -> Vec<(&'static str, Factory)> {
    vec![
        ("sgd", |g| {
            Box::new(
                Sgd::with_groups(
                    g,
                    SgdConfig {
                        lr: 0.05,
                        momentum: 0.9,
                        nesterov: true,
                        weight_decay: 1e-3,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("sgd-dampening", |g| {
            Box::new(
                Sgd::with_groups(
                    g,
                    SgdConfig {
                        lr: 0.05,
                        momentum: 0.8,
                        dampening: 0.2,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("adam", |g| {
            Box::new(
                Adam::with_groups(
                    g,
                    AdamConfig {
                        lr: 0.01,
                        amsgrad: true,
                        weight_decay: 1e-2,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("adamw", |g| {
            Box::new(
                AdamW::with_groups(
                    g,
                    AdamConfig {
                        lr: 0.01,
                        ..AdamConfig::adamw()
                    },
                )
                .unwrap(),
            )
        }),
        ("rmsprop", |g| {
            Box::new(
                RmsProp::with_groups(
                    g,
                    RmsPropConfig {
                        lr: 0.01,
                        momentum: 0.9,
                        centered: true,
                        weight_decay: 1e-3,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
    ]
}

struct Run {
    w: Variable,
    b: Variable,
    opt: Box<dyn Optimizer>,
}

impl Run {
    fn new(factory: Factory, w0: &[f32], b0: &[f32]) -> Run {
        let w = Variable::parameter(Tensor::from_vec(w0.to_vec(), &[2, 3]).unwrap());
        let b = Variable::parameter(Tensor::from_vec(b0.to_vec(), &[3]).unwrap());
        let groups = ParamGroup::split_decay(
            vec![named("layer.weight", &w), named("layer.bias", &b)],
            0.1,
        );
        let opt = factory(groups);
        Run { w, b, opt }
    }

    fn steps(&mut self, n: u64, schedule: &dyn LrSchedule) {
        for _ in 0..n {
            let t = self.opt.steps();
            self.opt.set_lr_factor(schedule.lr_at(t) / 0.01);
            for v in [&self.w, &self.b] {
                let g = fake_grad(&v.value().to_vec(), t);
                v.set_grad(Some(Tensor::from_vec(g, &v.shape()).unwrap()))
                    .unwrap();
            }
            self.opt.step().unwrap();
        }
    }

    fn bits(&self) -> Vec<u32> {
        [&self.w, &self.b]
            .iter()
            .flat_map(|v| v.value().to_vec())
            .map(f32::to_bits)
            .collect()
    }
}

/// `state_dict` / `load_state_dict` through bytes: 6 steps, save, rebuild everything from the
/// saved parameters and state, 6 more steps == 12 uninterrupted steps, bit for bit.
#[test]
fn resume_is_bit_identical() {
    let w0 = [0.5, -1.0, 0.25, 1.5, -0.75, 0.1];
    let b0 = [0.3, -0.2, 0.9];
    let schedule = WarmupCosine::new(0.01, 3, 12, 1e-3).unwrap();
    for (name, factory) in factories() {
        let mut straight = Run::new(factory, &w0, &b0);
        straight.steps(12, &schedule);

        let mut first = Run::new(factory, &w0, &b0);
        first.steps(6, &schedule);
        let saved = first.opt.state_dict();
        let (json, buffers) = (saved.metadata_json(), saved.buffers.clone());
        let (w_mid, b_mid) = (first.w.value().to_vec(), first.b.value().to_vec());
        drop(first);

        let mut resumed = Run::new(factory, &w_mid, &b_mid);
        let state = OptimizerState::from_metadata_json(&json, buffers).unwrap();
        assert_eq!(state.steps, 6);
        resumed.opt.load_state_dict(&state).unwrap();
        assert_eq!(resumed.opt.steps(), 6, "{name}");
        resumed.steps(6, &schedule);
        assert_eq!(
            resumed.bits(),
            straight.bits(),
            "{name}: resumed run differs from the uninterrupted one"
        );

        // Without the state the continuation differs: the test can tell.
        let mut fresh = Run::new(factory, &w_mid, &b_mid);
        fresh.steps(6, &schedule);
        assert_ne!(
            fresh.bits(),
            straight.bits(),
            "{name}: a restart without state should differ"
        );
    }
}

/// `load_state_dict` reports every mismatch and changes nothing when the state does not fit.
#[test]
fn load_state_reports_mismatches() {
    let w = Variable::parameter(Tensor::ones(&[2, 3]));
    let b = param(&[0.0; 3]);
    let mut adam = Adam::new(vec![named("w", &w), named("b", &b)], AdamConfig::default()).unwrap();
    w.set_grad(Some(Tensor::ones(&[2, 3]))).unwrap();
    b.set_grad(Some(Tensor::ones(&[3]))).unwrap();
    adam.step().unwrap();
    let saved = adam.state_dict();
    assert!(saved.buffers.contains_key("w.exp_avg") && saved.buffers.contains_key("b.exp_avg_sq"));

    // Another optimizer kind.
    let mut sgd = Sgd::new(vec![named("w", &w), named("b", &b)], SgdConfig::default()).unwrap();
    let e = sgd.load_state_dict(&saved).unwrap_err().to_string();
    assert!(e.contains("saved by Adam, this optimizer is Sgd"), "{e}");

    // Other parameters: renamed and reshaped.
    let w2 = Variable::parameter(Tensor::ones(&[3, 2]));
    let c = param(&[0.0; 3]);
    let mut other =
        Adam::new(vec![named("w", &w2), named("c", &c)], AdamConfig::default()).unwrap();
    let before = other.state_dict();
    let e = other.load_state_dict(&saved).unwrap_err().to_string();
    for needle in [
        "buffer 'w.exp_avg' has shape [2, 3] in the state but the parameter has [3, 2]",
        "missing buffer 'c.exp_avg'",
        "unexpected buffer 'b.exp_avg'",
        "no step count for parameter 'c'",
    ] {
        assert!(e.contains(needle), "missing '{needle}' in: {e}");
    }
    assert_eq!(
        other.state_dict(),
        before,
        "a refused load must change nothing"
    );

    // AMSGrad on one side only.
    let mut ams = Adam::new(
        vec![named("w", &w), named("b", &b)],
        AdamConfig {
            amsgrad: true,
            ..Default::default()
        },
    )
    .unwrap();
    let e = ams.load_state_dict(&saved).unwrap_err().to_string();
    assert!(
        e.contains("amsgrad = 0") && e.contains("missing buffer 'w.max_exp_avg_sq'"),
        "{e}"
    );

    // The same shape of optimizer with other hyper-parameters takes the saved ones.
    let mut same = Adam::new(
        vec![named("w", &w), named("b", &b)],
        AdamConfig {
            lr: 0.5,
            beta1: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    same.load_state_dict(&saved).unwrap();
    assert_eq!(same.config().beta1, 0.9);
    assert_eq!(same.lr(), 1e-3);
    assert_eq!(same.state_dict(), saved);
}
