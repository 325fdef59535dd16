//! Row kernels of attention over a KV cache: one query row against the cached keys.
//!
//! Decoding with a KV cache attends one new query row to `S` cached key rows, then mixes `S`
//! cached value rows. Both steps are too small for a GEMM call to pay off (a `1 x D` by `D x S`
//! product), so they are written as row loops the compiler vectorizes inside
//! [`crate::simd::with_simd`]: [`dot`] for a query-key score, [`weighted_sum`] for the mix of
//! value rows. Both sum in a fixed lane order, so results do not depend on the CPU.

/// `sum_i a[i] * b[i]` with eight independent partial sums (so the compiler can use vector
/// registers; a single running sum would have to be added strictly in order).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]);
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// `out = sum_s weights[s] * rows[s]` for the first `weights.len()` rows of `out.len()` floats
/// in `rows`. Sixteen output columns at a time stay in one accumulator (a vector register)
/// while every row streams past, instead of re-reading and re-writing `out` once per row.
#[inline(always)]
pub fn weighted_sum(rows: &[f32], weights: &[f32], out: &mut [f32]) {
    let d = out.len();
    for (c0, chunk) in (0..d).step_by(16).zip(out.chunks_mut(16)) {
        let mut acc = [0.0f32; 16];
        for (row, &w) in rows.chunks_exact(d).zip(weights) {
            match <&[f32; 16]>::try_from(&row[c0..c0 + chunk.len()]) {
                Ok(x) => {
                    for l in 0..16 {
                        acc[l] += w * x[l];
                    }
                }
                Err(_) => {
                    for (a, &x) in acc.iter_mut().zip(&row[c0..c0 + chunk.len()]) {
                        *a += w * x;
                    }
                }
            }
        }
        chunk.copy_from_slice(&acc[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{supported_levels, with_simd_at};

    fn ramp(n: usize, step: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * step)
            .collect()
    }

    /// The KV-cache dot product matches an f64 sequential sum at every SIMD level, for lengths
    /// around the vector width (0, 7, 8, 9, 64, 67).
    #[test]
    fn dot_matches_sequential_sum_at_every_level() {
        for level in supported_levels() {
            for n in [0, 1, 7, 8, 9, 64, 67] {
                let (a, b) = (ramp(n, 0.1), ramp(n + 3, 0.07));
                let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
                let got = with_simd_at(level, || dot(&a, &b[..n]));
                assert!(
                    (got as f64 - want).abs() < 1e-4,
                    "{level} n={n}: {got} vs {want}"
                );
            }
        }
    }

    /// The KV-cache weighted sum of value rows matches an f64 row-by-row sum at every SIMD level
    /// and overwrites the output.
    #[test]
    fn weighted_sum_matches_row_by_row_at_every_level() {
        for level in supported_levels() {
            for (rows, d) in [(1, 1), (3, 16), (5, 20), (9, 64), (4, 33)] {
                let values = ramp(rows * d, 0.05);
                let weights = ramp(rows, 0.3);
                let mut want = vec![0.0f64; d];
                for (row, &w) in values.chunks_exact(d).zip(&weights) {
                    for (o, &x) in want.iter_mut().zip(row) {
                        *o += w as f64 * x as f64;
                    }
                }
                let mut got = vec![f32::NAN; d];
                with_simd_at(level, || weighted_sum(&values, &weights, &mut got));
                for (g, w) in got.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "{level} rows={rows} d={d}");
                }
            }
        }
    }
}
