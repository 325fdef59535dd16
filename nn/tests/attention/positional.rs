//! Positional encodings: the sinusoidal formula and the refusal of sequences longer than the table.

use crate::helpers::invalid_reason;
use autograd::Variable;
use nn::positional::{sinusoidal_table, LearnedPositionalEmbedding, SinusoidalPositionalEncoding};
use nn::Module;
use tensor::{Tensor, TensorRng};

/// The sinusoidal position table equals sin and cos of p / 10000^(2i/d) in alternating columns.
#[test]
fn sinusoidal_table_follows_the_formula() {
    let (max_len, dim) = (12, 6);
    let table = sinusoidal_table(max_len, dim);
    assert_eq!(table.shape(), &[12, 6]);
    // Position 0: sin(0) = 0 and cos(0) = 1 alternate.
    assert_eq!(
        table.narrow(0, 0, 1).unwrap().to_vec(),
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    );
    for p in 0..max_len {
        for i in 0..dim / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            let (s, c) = (
                table.get(&[p, 2 * i]).unwrap(),
                table.get(&[p, 2 * i + 1]).unwrap(),
            );
            assert!((s as f64 - angle.sin()).abs() < 1e-6, "PE[{p}, {}]", 2 * i);
            assert!(
                (c as f64 - angle.cos()).abs() < 1e-6,
                "PE[{p}, {}]",
                2 * i + 1
            );
        }
    }
    // Hand values: PE[1, 0] = sin 1, PE[1, 2] = sin(1 / 10000^(1/3)).
    assert!((table.get(&[1, 0]).unwrap() - 0.841_470_96).abs() < 1e-6);
    assert!((table.get(&[1, 2]).unwrap() - (1.0f64 / 21.544_346_9).sin() as f32).abs() < 1e-6);
    // An odd width ends with a sine column.
    let odd = sinusoidal_table(3, 5);
    assert!((odd.get(&[2, 4]).unwrap() - (2.0f64 / 10000f64.powf(0.8)).sin() as f32).abs() < 1e-6);
    // The module adds the table and has no parameters.
    let pe = SinusoidalPositionalEncoding::new(max_len, dim);
    assert!(pe.named_parameters().is_empty());
    let x = Variable::parameter(Tensor::zeros(&[2, 4, dim]));
    let y = pe.forward_at(&x, 3).unwrap();
    assert_eq!(
        y.value()
            .narrow(0, 1, 1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec(),
        table.narrow(0, 3, 4).unwrap().to_vec()
    );
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0; 2 * 4 * dim]);
}

/// Learned positions start as N(0, 0.02), and a sequence longer than the table is an error for both
/// encodings, not a panic.
#[test]
fn positional_encodings_refuse_sequences_longer_than_the_table() {
    let mut rng = TensorRng::new(1);
    let wpe = LearnedPositionalEmbedding::new(4, 8, &mut rng);
    assert_eq!(wpe.weight.shape(), vec![4, 8]);
    // N(0, 0.02) initialisation.
    let w = wpe.weight.value().to_vec();
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((0.01..0.03).contains(&std), "std {std}");
    let ok = Variable::constant(Tensor::zeros(&[2, 4, 8]));
    assert_eq!(wpe.forward(&ok).unwrap().shape(), vec![2, 4, 8]);
    let long = Variable::constant(Tensor::zeros(&[2, 5, 8]));
    let msg = invalid_reason(wpe.forward(&long).unwrap_err());
    assert!(
        msg.contains("T = 5") && msg.contains("max_len = 4"),
        "{msg}"
    );
    let msg = invalid_reason(wpe.forward_at(&ok.narrow(1, 0, 2).unwrap(), 3).unwrap_err());
    assert!(msg.contains("3..5") && msg.contains("max_len = 4"), "{msg}");
    let pe = SinusoidalPositionalEncoding::new(4, 8);
    let msg = invalid_reason(pe.forward(&long).unwrap_err());
    assert!(
        msg.contains("T = 5") && msg.contains("max_len = 4"),
        "{msg}"
    );
    let msg = invalid_reason(
        pe.forward(&Variable::constant(Tensor::zeros(&[2, 3, 7])))
            .unwrap_err(),
    );
    assert!(msg.contains("C = 8"), "{msg}");
    // Gradients reach exactly the rows that were used.
    let x = Variable::constant(Tensor::zeros(&[3, 2, 8]));
    wpe.forward_at(&x, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = wpe.weight.grad().unwrap();
    let rows: Vec<f32> = g.to_vec().chunks(8).map(|r| r[0]).collect();
    assert_eq!(rows, vec![0.0, 3.0, 3.0, 0.0]);
}
