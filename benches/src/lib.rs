//! Criterion benchmarks of the hot paths live in `benches/`; this library holds what they share:
//! the named problem shapes, so every bench and the README table use the same ids and FLOP counts.
//! It also holds the model benchmarking harness ([`harness`]: statistics, benchmark runner, peak
//! memory, Pareto comparison, events, system info, reports and their validation), usable from any
//! binary.

pub mod harness;

/// One matrix-product problem: `batch` products of `(m, k) @ (k, n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    /// Criterion id inside the `matmul` group, e.g. `linear/2048x128x384` (M x K x N).
    pub id: &'static str,
    /// Number of independent products (1 for a plain matrix product).
    pub batch: usize,
    /// Rows of the left operand and of the result.
    pub m: usize,
    /// The reduction length.
    pub k: usize,
    /// Columns of the right operand and of the result.
    pub n: usize,
}

impl MatmulShape {
    /// Floating-point operations: one multiply and one add per term, `2 * batch * m * k * n`.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.m * self.k * self.n) as u64
    }

    /// Shape of the left operand as a tensor (`(m, k)` or `(batch, m, k)`).
    pub fn lhs_shape(&self) -> Vec<usize> {
        self.with_batch(self.m, self.k)
    }

    /// Shape of the right operand as a tensor (`(k, n)` or `(batch, k, n)`).
    pub fn rhs_shape(&self) -> Vec<usize> {
        self.with_batch(self.k, self.n)
    }

    fn with_batch(&self, rows: usize, cols: usize) -> Vec<usize> {
        if self.batch == 1 {
            vec![rows, cols]
        } else {
            vec![self.batch, rows, cols]
        }
    }
}

/// The GEMM shapes the project is judged on: squares, the linear layers of a small transformer
/// (tokens x features), and the attention-head batch.
pub const MATMUL_SHAPES: &[MatmulShape] = &[
    sq("square/256", 256),
    sq("square/512", 512),
    sq("square/1024", 1024),
    MatmulShape {
        id: "linear/2048x128x384",
        batch: 1,
        m: 2048,
        k: 128,
        n: 384,
    },
    MatmulShape {
        id: "linear/2048x128x512",
        batch: 1,
        m: 2048,
        k: 128,
        n: 512,
    },
    MatmulShape {
        id: "linear/2048x512x128",
        batch: 1,
        m: 2048,
        k: 512,
        n: 128,
    },
    MatmulShape {
        id: "linear/2048x128x65",
        batch: 1,
        m: 2048,
        k: 128,
        n: 65,
    },
    MatmulShape {
        id: "batched/48x64x32x64",
        batch: 48,
        m: 64,
        k: 32,
        n: 64,
    },
];

const fn sq(id: &'static str, n: usize) -> MatmulShape {
    MatmulShape {
        id,
        batch: 1,
        m: n,
        k: n,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts() {
        let s = MATMUL_SHAPES
            .iter()
            .find(|s| s.id == "square/1024")
            .unwrap();
        assert_eq!(s.flops(), 2 * 1024 * 1024 * 1024);
        let b = MATMUL_SHAPES
            .iter()
            .find(|s| s.id.starts_with("batched"))
            .unwrap();
        assert_eq!(b.flops(), 2 * 48 * 64 * 32 * 64);
        assert_eq!(b.lhs_shape(), vec![48, 64, 32]);
        assert_eq!(b.rhs_shape(), vec![48, 32, 64]);
    }
}
