//! Grader tests for the losses chapter: values against formulas computed in f64, gradcheck of
//! every loss, and numerical stability at extreme inputs (logits of 1e4, probabilities of 0 and 1).

use autograd::Variable;
use nn::activation::log_softmax;
use nn::loss::{
    binary_cross_entropy_with_logits, log_sigmoid, BceLoss, BceWithLogitsLoss, CrossEntropyLoss,
    MseLoss, NllLoss, Reduction,
};
use tensor::Tensor;

#[path = "support/common.rs"]
mod common;
use common::{check, randn, t};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

fn item(v: &Variable) -> f64 {
    v.item().unwrap() as f64
}

/// `-(1 - eps) log p_t - eps/C sum_j log p_j` for one row, in f64 with the max shift.
fn ce_row_f64(x: &[f32], target: usize, eps: f64) -> f64 {
    let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let lse = m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    let log_p: Vec<f64> = x.iter().map(|&v| v as f64 - lse).collect();
    let c = x.len() as f64;
    -(1.0 - eps) * log_p[target] - eps / c * log_p.iter().sum::<f64>()
}

/// Mean of `ce_row_f64` over the rows whose target is not ignored.
fn ce_f64(x: &Tensor, targets: &[usize], ignore: Option<usize>, eps: f64) -> f64 {
    let c = x.shape()[x.ndim() - 1];
    let v = x.to_vec();
    let rows: Vec<f64> = targets
        .iter()
        .enumerate()
        .filter(|(_, &t)| Some(t) != ignore)
        .map(|(r, &t)| ce_row_f64(&v[r * c..(r + 1) * c], t, eps))
        .collect();
    rows.iter().sum::<f64>() / rows.len() as f64
}

// ----- MSE -----

/// MSE is the mean (or sum) of squared errors on a hand-computed case and passes gradcheck for
/// prediction and target.
#[test]
fn mse_values_and_gradcheck() {
    let x = Variable::constant(t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let y = Variable::constant(t(&[0.0, 2.0, 5.0, 3.0], &[2, 2]));
    // squared errors 1, 0, 4, 1
    assert_eq!(MseLoss::new().forward(&x, &y).unwrap().item().unwrap(), 1.5);
    let sum = MseLoss::new().with_reduction(Reduction::Sum);
    assert_eq!(sum.forward(&x, &y).unwrap().item().unwrap(), 6.0);
    // gradient w.r.t. prediction and target
    check(
        |v| MseLoss::new().forward(&v[0], &v[1]),
        &[randn(&[3, 4], 1), randn(&[3, 4], 2)],
    );
    let msg = MseLoss::new()
        .forward(&x, &Variable::constant(Tensor::zeros(&[4])))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("MseLoss") && msg.contains("[2, 2]") && msg.contains("[4]"),
        "{msg}"
    );
}

// ----- cross-entropy -----

/// CrossEntropyLoss equals the f64 formula -log softmax(x)[target], also with label smoothing and
/// an ignored index.
#[test]
fn cross_entropy_values_match_the_f64_formula() {
    let x = randn(&[5, 4], 3).mul_scalar(2.0);
    let targets = [0, 3, 1, 1, 2];
    let logits = Variable::constant(x.clone());
    let plain = CrossEntropyLoss::new().forward(&logits, &targets).unwrap();
    assert!(close(item(&plain), ce_f64(&x, &targets, None, 0.0), 1e-5));
    let smoothed = CrossEntropyLoss::new()
        .label_smoothing(0.1)
        .ignore_index(1)
        .forward(&logits, &targets)
        .unwrap();
    assert!(close(
        item(&smoothed),
        ce_f64(&x, &targets, Some(1), 0.1),
        1e-5
    ));
    // sum = mean * counted rows
    let summed = CrossEntropyLoss::new()
        .ignore_index(1)
        .with_reduction(Reduction::Sum)
        .forward(&logits, &targets)
        .unwrap();
    assert!(close(
        item(&summed),
        3.0 * ce_f64(&x, &targets, Some(1), 0.0),
        1e-5
    ));
    // (N, T, C) is the same as (N*T, C)
    let seq = Variable::constant(x.reshape_to(&[1, 5, 4]).unwrap());
    let seq_loss = CrossEntropyLoss::new().forward(&seq, &targets).unwrap();
    assert!(close(item(&seq_loss), item(&plain), 1e-6));
}

/// CrossEntropyLoss passes gradcheck with and without ignore index and label smoothing, on 2-d and
/// (B, T, C) logits, mean and sum reductions.
#[test]
fn cross_entropy_gradcheck() {
    let targets = [2, 0, 4, 4, 1, 3];
    for (ignore, eps) in [(None, 0.0), (Some(4), 0.0), (Some(0), 0.25)] {
        let mut loss = CrossEntropyLoss::new().label_smoothing(eps);
        if let Some(i) = ignore {
            loss = loss.ignore_index(i);
        }
        check(|v| loss.forward(&v[0], &targets), &[randn(&[6, 5], 4)]);
        check(|v| loss.forward(&v[0], &targets), &[randn(&[2, 3, 5], 5)]);
        let sum = loss.with_reduction(Reduction::Sum);
        check(|v| sum.forward(&v[0], &targets), &[randn(&[6, 5], 6)]);
    }
}

/// Logits of size 1e4 give a finite loss equal to the f64 reference and a finite gradient.
#[test]
fn cross_entropy_is_stable_at_logits_of_1e4() {
    let x = t(
        &[
            1e4, 9999.0, -1e4, 0.0, //
            -1e4, 1e4, 1e4, -5e3, //
            3e3, -1e4, 2e3, 9.9e3,
        ],
        &[3, 4],
    );
    let logits = Variable::parameter(x.clone());
    for (targets, eps) in [([1, 0, 3], 0.0), ([2, 1, 0], 0.0), ([1, 3, 1], 0.1)] {
        let loss = CrossEntropyLoss::new()
            .label_smoothing(eps)
            .forward(&logits, &targets)
            .unwrap();
        let got = item(&loss);
        let want = ce_f64(&x, &targets, None, eps as f64);
        assert!(got.is_finite(), "loss {got}");
        assert!(close(got, want, 1e-6), "got {got}, f64 formula {want}");
        loss.backward().unwrap();
        let g = logits.grad().unwrap();
        assert!(g.all_finite(), "gradient {g:?}");
        // each row of the gradient sums to 0 (softmax minus a distribution)
        for r in 0..3 {
            let s: f32 = g.narrow(0, r, 1).unwrap().to_vec().iter().sum();
            assert!(s.abs() < 1e-5, "row {r} sums to {s}");
        }
        logits.zero_grad();
    }
    // the naive composition log(softmax) is not stable: softmax underflows to 0, log gives -inf
    let naive = -(x.softmax(1).unwrap().get(&[0, 2]).unwrap() as f64).ln();
    assert!(naive.is_infinite());
}

/// All targets ignored gives loss 0 and zero gradients; an out-of-range target or a wrong number of
/// targets is an error naming the problem.
#[test]
fn cross_entropy_all_ignored_and_errors() {
    let logits = Variable::parameter(randn(&[3, 4], 7));
    let loss = CrossEntropyLoss::new()
        .ignore_index(2)
        .forward(&logits, &[2, 2, 2])
        .unwrap();
    assert_eq!(loss.item().unwrap(), 0.0);
    loss.backward().unwrap();
    assert!(logits.grad().unwrap().to_vec().iter().all(|&g| g == 0.0));
    let msg = CrossEntropyLoss::new()
        .forward(&logits, &[0, 9, 1])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("target 9") && msg.contains("row 1"), "{msg}");
    assert!(CrossEntropyLoss::new().forward(&logits, &[0, 1]).is_err());
}

// ----- NLL -----

/// NLL of log-softmax equals cross-entropy and minus the mean of the picked log-probabilities,
/// passes gradcheck, and refuses bad targets.
#[test]
fn nll_values_gradcheck_and_errors() {
    let x = randn(&[4, 5], 8);
    let targets = [1, 4, 0, 4];
    let logits = Variable::constant(x.clone());
    let lp = log_softmax(&logits, -1).unwrap();
    // NLL of log-softmax is cross-entropy
    let nll = NllLoss::new().forward(&lp, &targets).unwrap();
    let ce = CrossEntropyLoss::new().forward(&logits, &targets).unwrap();
    assert!(close(item(&nll), item(&ce), 1e-6));
    // by hand: minus the mean of the picked entries
    let lpv = lp.value();
    let picked = [
        lpv.get(&[0, 1]).unwrap(),
        lpv.get(&[1, 4]).unwrap(),
        lpv.get(&[2, 0]).unwrap(),
        lpv.get(&[3, 4]).unwrap(),
    ];
    let want = -(picked.iter().sum::<f32>() as f64) / 4.0;
    assert!(close(item(&nll), want, 1e-6));
    let ignored = NllLoss::new()
        .ignore_index(4)
        .forward(&lp, &targets)
        .unwrap();
    let want = -((picked[0] + picked[2]) as f64) / 2.0;
    assert!(close(item(&ignored), want, 1e-6));
    let summed = NllLoss::new()
        .with_reduction(Reduction::Sum)
        .forward(&lp, &targets)
        .unwrap();
    assert!(close(item(&summed), 4.0 * item(&nll), 1e-6));
    // gradient: -1/count at each picked entry, through log-softmax too
    check(
        |v| NllLoss::new().forward(&v[0], &targets),
        std::slice::from_ref(&x),
    );
    check(
        |v| {
            NllLoss::new()
                .ignore_index(4)
                .forward(&log_softmax(&v[0], -1)?, &targets)
        },
        std::slice::from_ref(&x),
    );
    check(
        |v| NllLoss::new().forward(&v[0], &[0, 2, 1, 1, 2, 0]),
        &[randn(&[2, 3, 3], 9)],
    );
    // all ignored: 0 and a zero gradient
    let leaf = Variable::parameter(x.clone());
    let zero = NllLoss::new()
        .ignore_index(4)
        .forward(&leaf, &[4, 4, 4, 4])
        .unwrap();
    assert_eq!(zero.item().unwrap(), 0.0);
    zero.backward().unwrap();
    assert!(leaf.grad().unwrap().to_vec().iter().all(|&g| g == 0.0));
    let msg = NllLoss::new()
        .forward(&lp, &[0, 1, 5, 0])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("target 5") && msg.contains("row 2") && msg.contains("5 classes"),
        "{msg}"
    );
    assert!(NllLoss::new().forward(&lp, &[0, 1]).is_err());
}

// ----- binary cross-entropy -----

/// `max(x, 0) - x y + log(1 + e^-|x|)` in f64.
fn bce_logits_f64(x: f64, y: f64) -> f64 {
    x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
}

/// Binary cross-entropy with logits equals the stable f64 formula from -1e4 to 1e4 (no overflow in
/// exp).
#[test]
fn bce_with_logits_values_and_stability() {
    let xs = [-1e4f32, -100.0, -20.0, -2.0, -0.3, 0.0, 0.5, 3.0, 40.0, 1e4];
    let ys = [0.0f32, 1.0, 0.3, 1.0, 0.0, 0.5, 1.0, 0.0, 0.9, 1.0];
    let x = Variable::parameter(t(&xs, &[2, 5]));
    let y = Variable::constant(t(&ys, &[2, 5]));
    let loss = BceWithLogitsLoss::new().forward(&x, &y).unwrap();
    let per: Vec<f64> = xs
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| bce_logits_f64(a as f64, b as f64))
        .collect();
    let want = per.iter().sum::<f64>() / 10.0;
    assert!(item(&loss).is_finite());
    assert!(close(item(&loss), want, 1e-6), "{} vs {want}", item(&loss));
    loss.backward().unwrap();
    // d/dx = (sigmoid(x) - y) / n, everywhere including x = 0
    let g = x.grad().unwrap().to_vec();
    for (i, (&a, &b)) in xs.iter().zip(&ys).enumerate() {
        let s = 1.0 / (1.0 + (-(a as f64)).exp());
        assert!(
            (g[i] as f64 - (s - b as f64) / 10.0).abs() < 1e-6,
            "x = {a}: gradient {} vs {}",
            g[i],
            (s - b as f64) / 10.0
        );
    }
    let sum = BceWithLogitsLoss::new().with_reduction(Reduction::Sum);
    assert!(close(
        item(&sum.forward(&x, &y).unwrap()),
        want * 10.0,
        1e-6
    ));
    // log_sigmoid itself, far out in both tails
    let ls = log_sigmoid(&Variable::constant(t(&[-200.0, 0.0, 200.0], &[3])))
        .unwrap()
        .value()
        .to_vec();
    assert_eq!(ls[0], -200.0);
    assert!((ls[1] + std::f32::consts::LN_2).abs() < 1e-7 && ls[2] == 0.0);
}

/// Binary cross-entropy with logits passes gradcheck for logits and soft targets, and mismatched
/// shapes are an error naming both.
#[test]
fn bce_with_logits_gradcheck() {
    let target = Tensor::rand_uniform(&[3, 4], 0.0, 1.0, 10).unwrap();
    // w.r.t. logits and (soft) targets
    check(
        |v| BceWithLogitsLoss::new().forward(&v[0], &v[1]),
        &[randn(&[3, 4], 11).mul_scalar(3.0), target.clone()],
    );
    check(
        |v| binary_cross_entropy_with_logits(&v[0], &v[1], Reduction::Sum),
        &[
            randn(&[5], 12),
            Tensor::rand_uniform(&[5], 0.0, 1.0, 13).unwrap(),
        ],
    );
    let msg = BceWithLogitsLoss::new()
        .forward(
            &Variable::constant(Tensor::zeros(&[2])),
            &Variable::constant(Tensor::zeros(&[3])),
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("BceWithLogitsLoss") && msg.contains("[3]"),
        "{msg}"
    );
}

/// BCE on probabilities equals the f64 formula and the logits version, floors each log at -100 like
/// PyTorch, passes gradcheck, and refuses values outside [0, 1].
#[test]
fn bce_values_floor_and_gradcheck() {
    let ps = [0.1f32, 0.5, 0.9, 0.25, 0.7, 0.999];
    let ys = [0.0f32, 1.0, 1.0, 0.5, 0.0, 1.0];
    let p = Variable::constant(t(&ps, &[2, 3]));
    let y = Variable::constant(t(&ys, &[2, 3]));
    let want = ps
        .iter()
        .zip(&ys)
        .map(|(&p, &y)| {
            let (p, y) = (p as f64, y as f64);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 6.0;
    let loss = BceLoss::new().forward(&p, &y).unwrap();
    assert!(close(item(&loss), want, 1e-5), "{} vs {want}", item(&loss));
    // BCE(sigmoid(x)) equals BCE-with-logits(x) for moderate x
    let x = randn(&[2, 3], 14);
    let via_probs = BceLoss::new()
        .forward(&Variable::constant(x.sigmoid()), &y)
        .unwrap();
    let via_logits = BceWithLogitsLoss::new()
        .forward(&Variable::constant(x), &y)
        .unwrap();
    assert!(close(item(&via_probs), item(&via_logits), 1e-5));
    // p = 0 and p = 1: each log is floored at -100 (PyTorch), value and gradient finite
    let extreme = Variable::parameter(t(&[0.0, 1.0, 0.0, 1.0], &[4]));
    let target = Variable::constant(t(&[1.0, 0.0, 0.0, 1.0], &[4]));
    let loss = BceLoss::new().forward(&extreme, &target).unwrap();
    assert!((item(&loss) - 50.0).abs() < 1e-4, "loss {}", item(&loss));
    loss.backward().unwrap();
    assert!(extreme.grad().unwrap().all_finite());
    // gradcheck w.r.t. probabilities and targets, away from 0 and 1
    check(
        |v| BceLoss::new().forward(&v[0], &v[1]),
        &[
            Tensor::rand_uniform(&[2, 3], 0.2, 0.8, 15).unwrap(),
            Tensor::rand_uniform(&[2, 3], 0.0, 1.0, 16).unwrap(),
        ],
    );
    // inputs that are not probabilities are refused, naming the element
    let msg = BceLoss::new()
        .forward(
            &Variable::constant(t(&[0.5, 1.5], &[2])),
            &Variable::constant(Tensor::zeros(&[2])),
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("BceLoss") && msg.contains("element 1") && msg.contains("1.5"),
        "{msg}"
    );
}
