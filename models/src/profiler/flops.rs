//! Forward FLOPs counted analytically from shapes: [`FlopRule`] and the formulas of
//! `Linear`, `Conv2d` and attention.

use autograd::Variable;

/// How a layer's forward FLOPs are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlopRule {
    /// From the parameters and shapes of a single layer: a 2-D `weight` `(out, in)` taking
    /// `(..., in)` to `(..., out)` is a Linear, a 4-D `weight` `(O, C/g, KH, KW)` producing
    /// `(N, O, OH, OW)` is a Conv2d; everything else counts 0.
    Auto,
    /// Every 2-D parameter is a weight applied to every row of the input (`rows = numel / last
    /// dim`): a feed-forward network or the projections of an attention layer.
    TokenWise,
    /// [`FlopRule::TokenWise`] plus the attention matmuls of a `(B, T, C)` input: `4 * B * T^2 * C`.
    Transformer,
    /// A number given by the caller.
    Fixed(u64),
    /// Not counted (0).
    Uncounted,
}

/// `2 * rows * in * out`: a Linear layer on `rows` rows.
pub fn linear_flops(rows: usize, in_features: usize, out_features: usize) -> u64 {
    // HINT: each output element is a dot product of in_features multiply-adds (2 FLOPs each), and
    // HINT: there are rows * out_features of them.
    // BEGIN SOLUTION
    2 * rows as u64 * in_features as u64 * out_features as u64
    // END SOLUTION
}

/// `2 * N * OH * OW * numel(weight)`: a Conv2d producing `(N, O, OH, OW)` with a weight
/// `(O, C/groups, KH, KW)` (each output element is one dot product of `C/groups * KH * KW`).
pub fn conv2d_flops(output_shape: &[usize], weight_shape: &[usize]) -> u64 {
    // HINT: each output element is one dot product of C/groups * KH * KW multiply-adds, so 2 * N *
    // HINT: OH * OW * numel(weight) (0 unless both shapes are 4-D).
    // BEGIN SOLUTION
    if output_shape.len() != 4 || weight_shape.len() != 4 {
        return 0;
    }
    let per_map = output_shape[0] as u64 * output_shape[2] as u64 * output_shape[3] as u64;
    2 * per_map * weight_shape.iter().product::<usize>() as u64
    // END SOLUTION
}

/// `4 * B * T^2 * C`: the two attention matmuls (`Q K^T` and `A V`, `2 * B * T * T * C` each)
/// over the full square, whatever the number of heads.
pub fn attention_flops(batch: usize, seq: usize, n_embd: usize) -> u64 {
    // HINT: Q K^T and A V each take T * T * C multiply-adds per sequence (2 FLOPs each, heads
    // HINT: do not change the total), so 4 * B * T^2 * C in all.
    // BEGIN SOLUTION
    4 * batch as u64 * (seq as u64).pow(2) * n_embd as u64
    // END SOLUTION
}

/// The forward FLOPs of a layer with `params`, by `rule`, given its input and output shapes.
pub fn count_flops(
    rule: FlopRule,
    params: &[(String, Variable)],
    input: &[usize],
    output: &[usize],
) -> u64 {
    let token_wise = || {
        let c = input.last().copied().unwrap_or(0).max(1);
        let rows = input.iter().product::<usize>() / c;
        params
            .iter()
            .filter(|(_, p)| p.ndim() == 2)
            .map(|(_, p)| 2 * rows as u64 * p.numel() as u64)
            .sum::<u64>()
    };
    match rule {
        FlopRule::Auto => params
            .iter()
            .filter(|(n, _)| n == "weight" || n.ends_with(".weight"))
            .map(|(_, p)| {
                let w = p.shape();
                match w.len() {
                    2 if input.last() == Some(&w[1]) && output.last() == Some(&w[0]) => {
                        linear_flops(output.iter().product::<usize>() / w[0].max(1), w[1], w[0])
                    }
                    4 if input.len() == 4 && output.len() == 4 && output[1] == w[0] => {
                        conv2d_flops(output, &w)
                    }
                    _ => 0,
                }
            })
            .sum(),
        FlopRule::TokenWise => token_wise(),
        FlopRule::Transformer => {
            let attention = match input {
                [b, t, c] => attention_flops(*b, *t, *c),
                _ => 0,
            };
            token_wise() + attention
        }
        FlopRule::Fixed(n) => n,
        FlopRule::Uncounted => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Linear, Conv2d and attention FLOP formulas give hand-computed values.
    #[test]
    fn flop_formulas() {
        assert_eq!(linear_flops(32, 784, 128), 2 * 32 * 784 * 128);
        assert_eq!(
            conv2d_flops(&[2, 6, 24, 24], &[6, 1, 5, 5]),
            2 * 2 * 24 * 24 * 6 * 25
        );
        assert_eq!(attention_flops(2, 16, 32), 4 * 2 * 256 * 32);
    }
}
