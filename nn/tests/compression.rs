//! Grader tests for the compression chapter: sparsity, magnitude pruning masks, low-rank
//! factorization (Eckart-Young) and the distillation loss (gradcheck, composition, special cases,
//! errors).

use autograd::{no_grad, Variable};
use nn::distillation::{distillation_loss, DistillationLoss};
use nn::linear::Linear;
use nn::loss::{cross_entropy, Reduction};
use nn::low_rank::{singular_values, LowRankLinear};
use nn::prune::{
    magnitude_prune_global, magnitude_prune_per_layer, smallest_k_mask, sparsity, sparsity_of,
    Masks,
};
use nn::sequential::Sequential;
use nn::Module;
use tensor::{Tensor, TensorRng};

#[path = "support/common.rs"]
mod common;
use common::{check, randn, t};

fn two_layers() -> Sequential {
    // layer 0: |w| = 1..6; layer 1: |w| = 0.5, 7, 8, 9 (one small weight in the second layer).
    let l0 = Linear::from_tensors(
        t(&[1.0, -2.0, 3.0, -4.0, 5.0, -6.0], &[2, 3]),
        Some(t(&[0.0, 0.0], &[2])),
    )
    .unwrap();
    let l1 = Linear::from_tensors(t(&[0.5, 7.0, -8.0, 9.0], &[2, 2]), None).unwrap();
    Sequential::new().add(l0).add(l1)
}

// ----- sparsity -----

/// The sparsity report counts zeros in weights only (not biases), and an empty model reports None
/// instead of 0/0 = NaN.
#[test]
fn sparsity_counts_weights_not_biases_and_handles_zero_sizes() {
    let empty = Sequential::new();
    let report = sparsity(&empty);
    assert!(report.layers.is_empty());
    assert_eq!(report.global(), None, "0/0 is None, not NaN");

    let zero = Linear::from_tensors(Tensor::zeros(&[2, 2]), Some(t(&[1.0, 0.0], &[2]))).unwrap();
    let report = sparsity(&zero);
    assert_eq!(report.layers.len(), 1, "the bias is not counted");
    assert_eq!(report.layer("weight").unwrap().fraction(), Some(1.0));
    assert_eq!(report.global(), Some(1.0));
    // Biases count when listed explicitly.
    let all = sparsity_of(&zero.named_parameters());
    assert_eq!((all.zeros(), all.numel()), (5, 6));

    let empty_layer = Linear::from_tensors(Tensor::zeros(&[0, 3]), None).unwrap();
    assert_eq!(sparsity(&empty_layer).layers[0].fraction(), None);
}

/// The smallest-k mask zeroes exactly k entries even when magnitudes tie, for k from 0 to all.
#[test]
fn smallest_k_mask_prunes_exactly_k_even_with_ties() {
    let m = [0.0, 3.0, 0.0, 1.0, 0.0, 2.0];
    assert_eq!(smallest_k_mask(&m, 2), vec![0.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(smallest_k_mask(&m, 4), vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(smallest_k_mask(&m, 0), vec![1.0; 6]);
    assert_eq!(smallest_k_mask(&m, 6), vec![0.0; 6]);
    assert!(smallest_k_mask(&[], 3).is_empty());
}

/// Global magnitude pruning ranks every weight of the model together, so the 30% smallest across
/// both layers are cut (biases get no mask).
#[test]
fn global_pruning_uses_one_threshold_across_layers() {
    let model = two_layers();
    // 10 weights; 30% = 3 smallest: 0.5 (layer 1), 1 and 2 (layer 0).
    let masks = magnitude_prune_global(&model, 0.3).unwrap();
    assert_eq!(masks.len(), 2, "biases get no mask");
    assert_eq!(
        masks.get("0.weight").unwrap().to_vec(),
        vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(
        masks.get("1.weight").unwrap().to_vec(),
        vec![0.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(masks.pruned_fraction(), Some(0.3));
    masks.apply(&model).unwrap();
    let report = sparsity(&model);
    assert_eq!(report.global(), Some(0.3));
    assert_eq!(report.layer("1.weight").unwrap().zeros, 1);
    // Pruning again by the same fraction finds the same weights (the zeros are the smallest).
    assert_eq!(magnitude_prune_global(&model, 0.3).unwrap(), masks);
}

/// Per-layer pruning cuts the same fraction from each layer, and a fraction outside [0, 1] or NaN
/// is an error saying so.
#[test]
fn per_layer_pruning_takes_the_fraction_of_each_layer() {
    let model = two_layers();
    let masks = magnitude_prune_per_layer(&model, 0.5).unwrap();
    assert_eq!(
        masks.get("0.weight").unwrap().to_vec(),
        vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(
        masks.get("1.weight").unwrap().to_vec(),
        vec![0.0, 0.0, 1.0, 1.0]
    );
    for f in [-0.1, 1.5, f32::NAN] {
        let e = magnitude_prune_global(&model, f).unwrap_err().to_string();
        assert!(e.contains("fraction to prune must be in [0, 1]"), "{e}");
        assert!(magnitude_prune_per_layer(&model, f).is_err());
    }
    assert_eq!(
        magnitude_prune_global(&Sequential::new(), 0.5)
            .unwrap()
            .pruned_fraction(),
        None
    );
}

/// Applying masks with an unknown name, a wrong shape or values other than 0/1 is an error naming
/// the mask, and changes no weight.
#[test]
fn masks_refuse_unknown_names_wrong_shapes_and_non_binary_values() {
    let model = two_layers();
    let mut masks = Masks::new();
    masks.insert("0.weight", Tensor::ones(&[3, 2])).unwrap();
    masks.insert("nope", Tensor::ones(&[2])).unwrap();
    let e = masks.apply(&model).unwrap_err().to_string();
    assert!(
        e.contains("mask '0.weight' has shape [3, 2] but the parameter has shape [2, 3]"),
        "{e}"
    );
    assert!(e.contains("mask 'nope' names no parameter"), "{e}");
    // Nothing changed.
    assert_eq!(sparsity(&model).global(), Some(0.0));
    let e = Masks::new().insert("w", t(&[0.5], &[1])).unwrap_err();
    assert!(e.to_string().contains("only 0.0 and 1.0"), "{e}");
}

// ----- low rank -----

fn frobenius(a: &Tensor, b: &Tensor) -> f64 {
    a.to_vec()
        .iter()
        .zip(b.to_vec())
        .map(|(&x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// A low-rank factorization at full rank (down then up, bias kept on up) computes the same outputs
/// as the original Linear.
#[test]
fn full_rank_factorization_reproduces_the_layer() {
    let mut rng = TensorRng::new(3);
    for (inp, out) in [(7, 5), (4, 9), (6, 6)] {
        let layer = Linear::new(inp, out, true, &mut rng);
        let full = LowRankLinear::from_linear(&layer, inp.min(out)).unwrap();
        assert_eq!(full.down.weight.shape(), vec![inp.min(out), inp]);
        assert_eq!(full.up.weight.shape(), vec![out, inp.min(out)]);
        assert!(full.down.bias.is_none());
        let x = Variable::constant(randn(&[3, inp], 8));
        let y = layer.forward(&x).unwrap().value();
        let y_full = full.forward(&x).unwrap().value();
        assert!(y.allclose(&y_full, 1e-4, 1e-5), "{inp}x{out}");
    }
}

/// Truncating to rank r leaves a Frobenius error equal to the norm of the discarded singular values
/// (Eckart-Young).
#[test]
fn truncation_error_is_the_norm_of_the_discarded_singular_values() {
    let layer = Linear::from_tensors(randn(&[12, 20], 5), None).unwrap();
    let w = layer.weight.value();
    let s = singular_values(&w).unwrap();
    assert_eq!(s.len(), 12);
    assert!(s.windows(2).all(|p| p[0] >= p[1]), "decreasing: {s:?}");
    for rank in [1, 3, 8, 12] {
        let f = LowRankLinear::from_linear(&layer, rank).unwrap();
        let err = frobenius(&w, &f.weight().unwrap());
        let discarded = s[rank..]
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (err - discarded).abs() < 1e-4 * (1.0 + discarded),
            "rank {rank}: error {err} vs discarded {discarded}"
        );
        assert_eq!(f.num_parameters(), rank * (20 + 12));
    }
    // A diagonal matrix's singular values are its absolute entries, sorted.
    let d = t(&[0.0, -3.0, 5.0, 0.0, 0.0, 0.0], &[3, 2]);
    let s = singular_values(&d).unwrap();
    assert!(
        (s[0] - 5.0).abs() < 1e-6 && (s[1] - 3.0).abs() < 1e-6,
        "{s:?}"
    );
}

/// Rank 0, or a rank above min(in, out), is an error naming the valid range and the layer's shape.
#[test]
fn low_rank_refuses_rank_zero_and_too_large() {
    let layer = Linear::from_tensors(Tensor::ones(&[4, 6]), None).unwrap();
    for rank in [0, 5] {
        let e = LowRankLinear::from_linear(&layer, rank)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rank must be in 1..=4 for a Linear(6 -> 4)"),
            "{e}"
        );
    }
}

// ----- distillation -----

/// The same loss built from primitive ops: log-softmax, exp, mul, sums, cross-entropy.
fn composed(
    student: &Variable,
    teacher: &Tensor,
    labels: &[usize],
    temp: f32,
    alpha: f32,
) -> Variable {
    let n = labels.len() as f32;
    let log_q = student.div_scalar(temp).unwrap().log_softmax(-1).unwrap();
    let log_p = Variable::constant(teacher.clone())
        .div_scalar(temp)
        .unwrap()
        .log_softmax(-1)
        .unwrap();
    let p = log_p.exp().unwrap();
    let kl = p
        .mul(&log_p.sub(&log_q).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .div_scalar(n)
        .unwrap();
    let ce = cross_entropy(student, labels, None, 0.0, Reduction::Mean).unwrap();
    kl.mul_scalar(alpha * temp * temp)
        .unwrap()
        .add(&ce.mul_scalar(1.0 - alpha).unwrap())
        .unwrap()
}

fn value_and_grad(f: impl Fn(&Variable) -> Variable, x: &Tensor) -> (f32, Tensor) {
    let v = Variable::parameter(x.clone());
    let loss = f(&v);
    loss.backward().unwrap();
    (loss.item().unwrap(), v.grad().unwrap())
}

/// The distillation loss passes gradcheck with respect to the student's logits for several
/// temperatures and alphas.
#[test]
fn distillation_gradcheck() {
    let teacher = randn(&[5, 4], 2).map(|v| 2.0 * v);
    let labels = [0, 3, 1, 1, 2];
    for (temp, alpha) in [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (0.5, 1.0)] {
        check(
            |v| distillation_loss(&v[0], &teacher, &labels, temp, alpha),
            &[randn(&[5, 4], 1)],
        );
    }
}

/// The fused distillation loss equals its composition from log-softmax, KL and cross-entropy, in
/// value and gradient.
#[test]
fn distillation_equals_its_composition_from_primitives() {
    let student = randn(&[6, 5], 11).map(|v| 3.0 * v);
    let teacher = randn(&[6, 5], 12).map(|v| 3.0 * v);
    let labels = [4, 0, 2, 2, 1, 3];
    for (temp, alpha) in [(1.0, 0.5), (3.0, 0.7), (8.0, 0.95)] {
        let (fused, g_fused) = value_and_grad(
            |s| distillation_loss(s, &teacher, &labels, temp, alpha).unwrap(),
            &student,
        );
        let (comp, g_comp) =
            value_and_grad(|s| composed(s, &teacher, &labels, temp, alpha), &student);
        assert!(
            (fused - comp).abs() < 1e-5 * (1.0 + comp.abs()),
            "{fused} vs {comp}"
        );
        assert!(
            g_fused.allclose(&g_comp, 1e-4, 1e-6),
            "T={temp} alpha={alpha}"
        );
        assert_ne!(g_fused, Tensor::zeros(&[6, 5]));
    }
}

/// With alpha = 0 distillation is plain cross-entropy, and with T = 1, alpha = 1 it is the KL
/// divergence to the teacher.
#[test]
fn alpha_zero_is_cross_entropy_and_t1_alpha1_is_kl() {
    let student = randn(&[4, 3], 21);
    let teacher = randn(&[4, 3], 22);
    let labels = [2, 0, 1, 0];
    let (d, gd) = value_and_grad(
        |s| distillation_loss(s, &teacher, &labels, 3.0, 0.0).unwrap(),
        &student,
    );
    let (c, gc) = value_and_grad(
        |s| cross_entropy(s, &labels, None, 0.0, Reduction::Mean).unwrap(),
        &student,
    );
    assert!((d - c).abs() < 1e-6, "{d} vs {c}");
    assert!(gd.allclose(&gc, 1e-5, 1e-7));

    let (d, gd) = value_and_grad(
        |s| distillation_loss(s, &teacher, &labels, 1.0, 1.0).unwrap(),
        &student,
    );
    // KL(p || q) = sum p (log p - log q), and its gradient is (q - p) / N.
    let p = teacher.softmax(-1).unwrap().to_vec();
    let q = student.softmax(-1).unwrap().to_vec();
    let kl: f32 = p
        .iter()
        .zip(&q)
        .map(|(p, q)| p * (p.ln() - q.ln()))
        .sum::<f32>()
        / 4.0;
    assert!((d - kl).abs() < 1e-6, "{d} vs {kl}");
    let expect: Vec<f32> = q.iter().zip(&p).map(|(q, p)| (q - p) / 4.0).collect();
    assert!(gd.allclose(&t(&expect, &[4, 3]), 1e-5, 1e-7));
    // Same distributions: zero loss.
    let same = distillation_loss(
        &Variable::constant(teacher.clone()),
        &teacher,
        &labels,
        1.0,
        1.0,
    )
    .unwrap();
    assert!(same.item().unwrap().abs() < 1e-6);
}

/// Backward through the distillation loss gives the student a gradient and the teacher none, and
/// under no_grad no graph is recorded.
#[test]
fn the_teacher_gets_no_gradient_and_no_grad_records_nothing() {
    let student = Variable::parameter(randn(&[2, 3], 1));
    let teacher_model = Linear::from_tensors(randn(&[3, 4], 2), None).unwrap();
    let x = Variable::constant(randn(&[2, 4], 3));
    let teacher = no_grad(|| teacher_model.forward(&x).unwrap().value());
    let loss = DistillationLoss::new(2.0, 0.5)
        .unwrap()
        .forward(&student, &teacher, &[0, 2])
        .unwrap();
    assert_eq!(loss.grad_fn(), Some("DistillationBackward"));
    loss.backward().unwrap();
    assert!(student.grad().is_some());
    assert!(teacher_model.weight.grad().is_none());
}

/// A non-positive or non-finite temperature, an alpha outside [0, 1], or mismatched shapes are
/// errors saying which.
#[test]
fn distillation_errors_name_the_problem() {
    let s = Variable::parameter(Tensor::zeros(&[2, 3]));
    let teacher = Tensor::zeros(&[2, 3]);
    for temp in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = distillation_loss(&s, &teacher, &[0, 1], temp, 0.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("temperature must be finite and > 0"), "{e}");
        assert!(DistillationLoss::new(temp, 0.5).is_err());
    }
    for alpha in [-0.1, 1.1, f32::NAN] {
        let e = distillation_loss(&s, &teacher, &[0, 1], 2.0, alpha)
            .unwrap_err()
            .to_string();
        assert!(e.contains("alpha must be in [0, 1]"), "{e}");
        assert!(DistillationLoss::new(2.0, alpha).is_err());
    }
    let e = distillation_loss(&s, &Tensor::zeros(&[2, 4]), &[0, 1], 2.0, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("DistillationLoss"), "{e}");
    assert!(e.contains("[2, 3]") && e.contains("[2, 4]"), "{e}");
    let e = s
        .distillation_loss(&Tensor::zeros(&[3, 3]), &[0, 1], 2.0, 0.5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("distillation") && e.contains("[2, 3]") && e.contains("[3, 3]"),
        "{e}"
    );
    let e = distillation_loss(&s, &teacher, &[0], 2.0, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 labels for 2 rows"), "{e}");
    let e = distillation_loss(&s, &teacher, &[0, 3], 2.0, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 3 in row 1 is out of range"), "{e}");
    let s3 = Variable::parameter(Tensor::zeros(&[1, 2, 3]));
    let e = distillation_loss(&s3, &Tensor::zeros(&[1, 2, 3]), &[0], 2.0, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be (N, C)"), "{e}");
}
