//! Generated tasks: the attention proofs (reverse, copy and sort a row of digits, alone or mixed
//! with a prefix token naming the task per row), separable blobs (the perceptron) and noisy XOR
//! (the crisis of 1969). All are deterministic given a seed.

use tensor::TensorRng;

/// Token ids of the reversal task: digits 0..=9, then the separator.
pub const REVERSE_SEPARATOR: usize = 10;
/// Vocabulary size of the reversal task.
pub const REVERSE_VOCAB: usize = 11;

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

/// The sequence-to-sequence attention proofs: each maps a row of digits to another row of the
/// same length, which a decoder-only transformer writes after a separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqTask {
    /// Write the digits backwards: every output looks at a different, far input position.
    Reverse,
    /// Write the digits again: the output at distance `len + 1` from its source (induction).
    Copy,
    /// Write the digits in ascending order: each output compares all inputs (counting).
    Sort,
}

impl SeqTask {
    /// Every task, in the order of their prefix tokens.
    pub const ALL: [SeqTask; 3] = [SeqTask::Reverse, SeqTask::Copy, SeqTask::Sort];

    /// The task's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SeqTask::Reverse => "reverse",
            SeqTask::Copy => "copy",
            SeqTask::Sort => "sort",
        }
    }

    /// The task called `name` (`reverse`, `copy`, `sort`).
    pub fn from_name(name: &str) -> Option<SeqTask> {
        SeqTask::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The token that announces this task at the start of a mixed-task row.
    pub fn prefix_token(self) -> usize {
        // The prefixes follow the separator: reverse, copy, sort take SEP+1, SEP+2, SEP+3.
        REVERSE_SEPARATOR + 1 + SeqTask::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The task a prefix token announces.
    pub fn from_prefix(token: usize) -> Option<SeqTask> {
        SeqTask::ALL.into_iter().find(|t| t.prefix_token() == token)
    }

    /// The answer to `digits` under this task.
    pub fn answer(self, digits: &[usize]) -> Vec<usize> {
        let mut out = digits.to_vec();
        match self {
            SeqTask::Reverse => out.reverse(),
            SeqTask::Copy => {}
            SeqTask::Sort => out.sort_unstable(),
        }
        out
    }
}

/// Vocabulary of the mixed task: digits, separator and one prefix token per task.
pub const MIXED_VOCAB: usize = REVERSE_SEPARATOR + 1 + SeqTask::ALL.len();

/// Rows of a sequence task with the length of their prompt: `prompt` tokens the model reads, then
/// the answer it must write (`tokens[prompt..]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRows {
    /// Flat rows, each `prompt + digits` tokens long.
    pub rows: Vec<Vec<usize>>,
    /// Tokens before the answer: `digits + 1` (digits, separator), plus 1 with a task prefix.
    pub prompt: usize,
    /// Digits per row (the answer's length).
    pub digits: usize,
}

/// `count` rows of one task: `x_1 .. x_n SEP y_1 .. y_n` with `y = task.answer(x)`.
pub fn task_examples(task: SeqTask, count: usize, len: usize, rng: &mut TensorRng) -> SeqRows {
    let rows = (0..count)
        .map(|_| {
            let digits: Vec<usize> = (0..len).map(|_| rng.below(10)).collect();
            let mut row = digits.clone();
            row.push(REVERSE_SEPARATOR);
            row.extend(task.answer(&digits));
            row
        })
        .collect();
    SeqRows {
        rows,
        prompt: len + 1,
        digits: len,
    }
}

/// `count` rows of the mixed task: `P x_1 .. x_n SEP y_1 .. y_n`, the task chosen uniformly per
/// row and announced by its prefix token `P` ([`SeqTask::prefix_token`]).
pub fn mixed_examples(count: usize, len: usize, rng: &mut TensorRng) -> SeqRows {
    let rows = (0..count)
        .map(|_| {
            let task = SeqTask::ALL[rng.below(SeqTask::ALL.len())];
            let digits: Vec<usize> = (0..len).map(|_| rng.below(10)).collect();
            let mut row = vec![task.prefix_token()];
            row.extend(&digits);
            row.push(REVERSE_SEPARATOR);
            row.extend(task.answer(&digits));
            row
        })
        .collect();
    SeqRows {
        rows,
        prompt: len + 2,
        digits: len,
    }
}
