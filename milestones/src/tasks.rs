//! Generated tasks: sequence reversal (the attention proof), separable blobs (the perceptron) and
//! noisy XOR (the crisis of 1969). All are deterministic given a seed.

use tensor::TensorRng;

/// Token ids of the reversal task: digits 0..=9, then the separator.
pub const REVERSE_SEPARATOR: usize = 10;
/// Vocabulary size of the reversal task.
pub const REVERSE_VOCAB: usize = 11;

/// `count` reversal examples of `len` digits: `x_1 .. x_n SEP x_n .. x_1`, as flat token rows of
/// length `2 * len + 1`.
pub fn reversal_examples(count: usize, len: usize, rng: &mut TensorRng) -> Vec<Vec<usize>> {
    (0..count)
        .map(|_| {
            let digits: Vec<usize> = (0..len).map(|_| rng.below(10)).collect();
            let mut row = digits.clone();
            row.push(REVERSE_SEPARATOR);
            row.extend(digits.iter().rev());
            row
        })
        .collect()
}

/// Two Gaussian blobs in 2-D, linearly separable with a margin: `(points (n, 2) row-major,
/// labels 0/1)`.
pub fn blobs(n: usize, rng: &mut TensorRng) -> (Vec<f32>, Vec<usize>) {
    let mut points = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % 2;
        let (cx, cy) = if label == 1 { (2.0, 2.0) } else { (-2.0, -2.0) };
        points.push(cx + 0.7 * rng.standard_normal() as f32);
        points.push(cy + 0.7 * rng.standard_normal() as f32);
        labels.push(label);
    }
    (points, labels)
}

/// Noisy XOR: the four corners of the unit square (label = x XOR y), each sample jittered by
/// Gaussian noise of standard deviation `noise`.
pub fn noisy_xor(n: usize, noise: f32, rng: &mut TensorRng) -> (Vec<f32>, Vec<usize>) {
    let mut points = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (i % 2, (i / 2) % 2);
        points.push(a as f32 + noise * rng.standard_normal() as f32);
        points.push(b as f32 + noise * rng.standard_normal() as f32);
        labels.push(a ^ b);
    }
    (points, labels)
}
