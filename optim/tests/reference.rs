//! Grader tests: every optimizer's first three steps and every schedule agree with PyTorch.
//!
//! The numbers come from `tests/fixtures/reference.json`, written once by
//! `tests/fixtures/make_reference.py` (PyTorch is never needed to run these tests). Each optimizer
//! case starts two parameters `w` (3, 4) and `b` (5,) from stored values, feeds three stored
//! gradients, and compares the parameters after every step to torch.optim's, to 1e-6 relative.

use autograd::Variable;
use optim::schedule::{
    CosineAnnealing, ExponentialLr, LrSchedule, OneCycle, OneCycleConfig, PlateauConfig,
    PlateauMode, ReduceLrOnPlateau, StepLr, ThresholdMode, WarmupCosine,
};
use optim::{
    Adam, AdamConfig, AdamW, Optimizer, ParamGroup, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use serde_json::Value;
use tensor::Tensor;

const REL: f32 = 1e-6;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, &shape).expect("shape matches data")
}

fn f(config: &Value, key: &str, default: f64) -> f64 {
    config.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn b(config: &Value, key: &str) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Build the optimizer a fixture case describes, over `w` and `b`.
fn build(case: &Value, w: &Variable, bias: &Variable) -> Box<dyn Optimizer> {
    let config = &case["config"];
    let named = |n: &str| -> (String, Variable) {
        match n {
            "w" => ("w".into(), w.clone()),
            "b" => ("b".into(), bias.clone()),
            other => panic!("unknown parameter {other}"),
        }
    };
    let groups: Vec<ParamGroup> = match case["groups"].as_array() {
        None => vec![ParamGroup::new(vec![named("w"), named("b")])],
        Some(groups) => groups
            .iter()
            .map(|g| ParamGroup {
                params: g["params"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| named(n.as_str().unwrap()))
                    .collect(),
                lr: g.get("lr").and_then(Value::as_f64),
                weight_decay: g.get("weight_decay").and_then(Value::as_f64),
            })
            .collect(),
    };
    let adam = || AdamConfig {
        lr: f(config, "lr", 1e-3),
        beta1: f(config, "beta1", 0.9),
        beta2: f(config, "beta2", 0.999),
        eps: f(config, "eps", 1e-8),
        weight_decay: f(config, "weight_decay", 0.0),
        amsgrad: b(config, "amsgrad"),
        allow_unused: false,
    };
    match case["optimizer"].as_str().unwrap() {
        "Sgd" => Box::new(
            Sgd::with_groups(
                groups,
                SgdConfig {
                    lr: f(config, "lr", 1e-3),
                    momentum: f(config, "momentum", 0.0),
                    dampening: f(config, "dampening", 0.0),
                    nesterov: b(config, "nesterov"),
                    weight_decay: f(config, "weight_decay", 0.0),
                    allow_unused: false,
                },
            )
            .unwrap(),
        ),
        "Adam" => Box::new(Adam::with_groups(groups, adam()).unwrap()),
        "AdamW" => Box::new(AdamW::with_groups(groups, adam()).unwrap()),
        "RmsProp" => Box::new(
            RmsProp::with_groups(
                groups,
                RmsPropConfig {
                    lr: f(config, "lr", 1e-2),
                    alpha: f(config, "alpha", 0.99),
                    eps: f(config, "eps", 1e-8),
                    weight_decay: f(config, "weight_decay", 0.0),
                    momentum: f(config, "momentum", 0.0),
                    centered: b(config, "centered"),
                    allow_unused: false,
                },
            )
            .unwrap(),
        ),
        other => panic!("unknown optimizer {other}"),
    }
}

/// Replay one case and return the worst relative error over all steps and elements.
fn replay(name: &str) -> f32 {
    let fx = fixture();
    let case = &fx["optimizers"][name];
    assert!(case.is_object(), "no case {name} in the fixture");
    let w = Variable::parameter(tensor(&fx["initial"]["w"]));
    let bias = Variable::parameter(tensor(&fx["initial"]["b"]));
    let mut opt = build(case, &w, &bias);
    let mut worst = 0.0f32;
    for (step, (grads, after)) in fx["grads"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["after"].as_array().unwrap())
        .enumerate()
    {
        w.set_grad(Some(tensor(&grads["w"]))).unwrap();
        bias.set_grad(Some(tensor(&grads["b"]))).unwrap();
        opt.step().unwrap();
        for (pname, var) in [("w", &w), ("b", &bias)] {
            let expected = tensor(&after[pname]);
            for (i, (got, want)) in var
                .value()
                .to_vec()
                .into_iter()
                .zip(expected.to_vec())
                .enumerate()
            {
                let rel = (got - want).abs() / want.abs();
                assert!(
                    rel <= REL,
                    "{name}: step {} parameter {pname}[{i}]: {got} vs torch {want} (relative error {rel:.2e})",
                    step + 1
                );
                worst = worst.max(rel);
            }
        }
    }
    assert_eq!(opt.steps(), 3);
    worst
}

/// `sgd_update`: plain, momentum + Nesterov + weight decay, and dampening.
#[test]
fn sgd_matches_torch() {
    for case in ["sgd_plain", "sgd_momentum_nesterov_wd", "sgd_dampening"] {
        let worst = replay(case);
        println!("{case}: worst relative error {worst:.2e}");
    }
}

/// `adam_update`: defaults, AMSGrad with other betas, L2 weight decay.
#[test]
fn adam_matches_torch() {
    for case in ["adam", "adam_amsgrad", "adam_weight_decay"] {
        let worst = replay(case);
        println!("{case}: worst relative error {worst:.2e}");
    }
}

/// `adam_update` with decoupled decay (AdamW), with and without AMSGrad.
#[test]
fn adamw_matches_torch() {
    for case in ["adamw", "adamw_amsgrad"] {
        let worst = replay(case);
        println!("{case}: worst relative error {worst:.2e}");
    }
}

/// `rmsprop_update`: plain, and centered with momentum and weight decay.
#[test]
fn rmsprop_matches_torch() {
    for case in ["rmsprop", "rmsprop_centered_momentum"] {
        let worst = replay(case);
        println!("{case}: worst relative error {worst:.2e}");
    }
}

/// Parameter groups with their own lr and weight decay, as torch's param_groups.
#[test]
fn param_groups_match_torch() {
    for case in ["adamw_groups", "sgd_groups"] {
        let worst = replay(case);
        println!("{case}: worst relative error {worst:.2e}");
    }
}

fn check_lrs(name: &str, schedule: &dyn LrSchedule, expected: &Value) {
    let expected = expected.as_array().unwrap();
    assert!(!expected.is_empty());
    for (step, want) in expected.iter().enumerate() {
        let want = want.as_f64().unwrap();
        let got = schedule.lr_at(step as u64);
        assert!(
            (got - want).abs() <= 1e-6 * want.abs() + 1e-12,
            "{name}: step {step}: {got} vs torch {want}"
        );
    }
}

/// `StepLr`, `ExponentialLr`, `CosineAnnealing` and `OneCycle::lr_at` against torch's schedulers,
/// at every step (cosine past T_max, one-cycle up to total_steps).
#[test]
fn schedules_match_torch() {
    let fx = fixture();
    let s = &fx["schedules"];
    let c = &s["step"];
    let step = StepLr::new(
        c["base_lr"].as_f64().unwrap(),
        c["step_size"].as_u64().unwrap(),
        c["gamma"].as_f64().unwrap(),
    )
    .unwrap();
    check_lrs("StepLr", &step, &c["lrs"]);
    let c = &s["exponential"];
    let exp =
        ExponentialLr::new(c["base_lr"].as_f64().unwrap(), c["gamma"].as_f64().unwrap()).unwrap();
    check_lrs("ExponentialLr", &exp, &c["lrs"]);
    let c = &s["cosine"];
    let cos = CosineAnnealing::new(
        c["base_lr"].as_f64().unwrap(),
        c["t_max"].as_u64().unwrap(),
        c["eta_min"].as_f64().unwrap(),
    )
    .unwrap();
    check_lrs("CosineAnnealing", &cos, &c["lrs"]);
    for name in ["one_cycle", "one_cycle_three_phase"] {
        let c = &s[name];
        let one = OneCycle::new(OneCycleConfig {
            max_lr: c["max_lr"].as_f64().unwrap(),
            total_steps: c["total_steps"].as_u64().unwrap(),
            pct_start: c["pct_start"].as_f64().unwrap(),
            div_factor: c["div_factor"].as_f64().unwrap(),
            final_div_factor: c["final_div_factor"].as_f64().unwrap(),
            three_phase: c["three_phase"].as_bool().unwrap(),
        })
        .unwrap();
        check_lrs(name, &one, &c["lrs"]);
    }
}

/// `WarmupCosine::lr_at` against nanoGPT's get_lr (warmup, decay, floor).
#[test]
fn warmup_cosine_matches_nanogpt() {
    let fx = fixture();
    let c = &fx["schedules"]["warmup_cosine"];
    let s = WarmupCosine::new(
        c["max_lr"].as_f64().unwrap(),
        c["warmup_iters"].as_u64().unwrap(),
        c["lr_decay_iters"].as_u64().unwrap(),
        c["min_lr"].as_f64().unwrap(),
    )
    .unwrap();
    check_lrs("WarmupCosine", &s, &c["lrs"]);
}

/// `ReduceLrOnPlateau::observe` replays torch's ReduceLROnPlateau over stored metrics
/// (min/rel with cooldown and a floor, max/abs).
#[test]
fn plateau_matches_torch() {
    let fx = fixture();
    for (name, c) in fx["plateaus"].as_object().unwrap() {
        let config = PlateauConfig {
            mode: if c["mode"] == "min" {
                PlateauMode::Min
            } else {
                PlateauMode::Max
            },
            factor: c["factor"].as_f64().unwrap(),
            patience: c["patience"].as_u64().unwrap(),
            threshold: c["threshold"].as_f64().unwrap(),
            threshold_mode: if c["threshold_mode"] == "rel" {
                ThresholdMode::Rel
            } else {
                ThresholdMode::Abs
            },
            cooldown: c["cooldown"].as_u64().unwrap(),
            min_lr: c["min_lr"].as_f64().unwrap(),
            eps: 1e-8,
        };
        let mut sched = ReduceLrOnPlateau::new(0.1, config).unwrap();
        let metrics = c["metrics"].as_array().unwrap();
        let lrs = c["lrs"].as_array().unwrap();
        let mut cuts = 0;
        for (i, (m, want)) in metrics.iter().zip(lrs).enumerate() {
            let before = sched.lr();
            let got = sched.observe(m.as_f64().unwrap());
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{name}: observation {i}: lr {got} vs torch {want}"
            );
            cuts += usize::from(got < before);
        }
        assert!(
            cuts >= 3,
            "{name}: the sequence should exercise several cuts, saw {cuts}"
        );
    }
}
