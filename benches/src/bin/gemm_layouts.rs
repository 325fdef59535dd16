//! The three GEMM layouts of a linear layer's training step, timed on the training presets'
//! shapes: `fwd` is `x @ W^T` (the weight read transposed, as stored `(out, in)`), `dx` is
//! `dY @ W` (both row-major) and `dw` is `dY^T @ X` (the left operand transposed, the sum
//! running over the batch rows; the weight gradient in `W`'s own `(out, in)` layout, as
//! `autograd` computes it). The training step's GEMM time is these products, so a layout
//! that lags shows up here before it shows up in `train_step --phases`.
//!
//! ```text
//! cargo run -p benches --release --bin gemm_layouts -- --threads 1,2
//! ~/.cache/tinytorch-peers/bin/python benches/peers/torch_gemm_layouts.py --threads 1,2
//! ```
//!
//! Each product writes a preallocated output (`tensor::gemm`, as the peer's `out=`); the figure
//! is the median of `--repeats` timings, each of as many calls as fill about 20 ms, in GFLOP/s
//! (`2 m k n` per product).

use std::time::Instant;

use benches::harness::runner::{Benchmark, MIN_RUNS};
use clap::Parser;
use tensor::gemm::{gemm, MatRef, Parallelism};
use tensor::TensorRng;

#[derive(Parser, Debug)]
#[command(about = "GFLOP/s of a linear layer's three GEMM layouts on the training presets' shapes")]
struct Args {
    /// Thread counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Timings per product (at least 3); the median is reported.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Only the preset of this name (`nanogpt-baby` or `tinytorch-tinystories`).
    #[arg(long)]
    preset: Option<String>,
}

/// The dimensions of one training preset (those of `train_step`): the layers' shapes follow.
struct Preset {
    name: &'static str,
    batch: usize,
    block: usize,
    n_embd: usize,
}

const PRESETS: [Preset; 2] = [
    Preset {
        name: "nanogpt-baby",
        batch: 12,
        block: 64,
        n_embd: 128,
    },
    Preset {
        name: "tinytorch-tinystories",
        batch: 32,
        block: 128,
        n_embd: 256,
    },
];

/// Symbols of the character vocabulary (the language-model head's width).
const VOCAB: usize = 65;

impl Preset {
    /// Rows of every product (`batch * block`).
    fn rows(&self) -> usize {
        self.batch * self.block
    }

    /// `(name, in, out)` of a block's linear layers and the head (GPT-2's widths).
    fn layers(&self) -> [(&'static str, usize, usize); 5] {
        let c = self.n_embd;
        [
            ("qkv", c, 3 * c),
            ("proj", c, c),
            ("fc", c, 4 * c),
            ("fc2", 4 * c, c),
            ("head", c, VOCAB),
        ]
    }
}

fn main() {
    let args = Args::parse();
    if args.threads.contains(&0) || args.repeats < MIN_RUNS {
        eprintln!("error: --threads takes positive values and --repeats at least {MIN_RUNS}");
        std::process::exit(2);
    }
    let presets: Vec<&Preset> = PRESETS
        .iter()
        .filter(|p| args.preset.as_deref().is_none_or(|name| name == p.name))
        .collect();
    if presets.is_empty() {
        eprintln!(
            "error: --preset {:?} is not one of nanogpt-baby, tinytorch-tinystories",
            args.preset.unwrap_or_default()
        );
        std::process::exit(2);
    }
    if let Err(e) = tensor::simd::simd_cap_from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    println!(
        "# SIMD {} (TINYTORCH_SIMD caps it), GEMM AVX-512 kernels built: {}",
        tensor::simd::simd_level(),
        tensor::simd::GEMM_AVX512_BUILT
    );
    println!("preset,layer,layout,m,k,n,threads,gflops");
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        pool.install(|| {
            for preset in &presets {
                for (layer, fan_in, fan_out) in preset.layers() {
                    for (layout, [m, k, n], gflops) in
                        time_layer(preset.rows(), fan_in, fan_out, args.repeats)
                    {
                        println!(
                            "{},{layer},{layout},{m},{k},{n},{threads},{gflops:.1}",
                            preset.name
                        );
                    }
                }
            }
        });
    }
}

/// Each layout of one layer: its name, `[m, k, n]` and median GFLOP/s.
fn time_layer(
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    repeats: usize,
) -> Vec<(&'static str, [usize; 3], f64)> {
    let mut rng = TensorRng::new(7);
    let mut random = |len: usize| -> Vec<f32> {
        rng.normal(&[len], 0.0, 1.0)
            .expect("a valid shape")
            .to_vec()
    };
    let x = random(rows * fan_in);
    let w = random(fan_out * fan_in);
    let dy = random(rows * fan_out);
    fn mat(data: &[f32], rows: usize, cols: usize) -> MatRef<'_> {
        MatRef::row_major(data, rows, cols).expect("the buffer has rows * cols values")
    }
    let fwd = (mat(&x, rows, fan_in), mat(&w, fan_out, fan_in).t());
    let dx = (mat(&dy, rows, fan_out), mat(&w, fan_out, fan_in));
    let dw = (mat(&dy, rows, fan_out).t(), mat(&x, rows, fan_in));
    [("fwd", fwd), ("dx", dx), ("dw", dw)]
        .into_iter()
        .map(|(name, (a, b))| {
            let shape = [a.rows(), a.cols(), b.cols()];
            (name, shape, time_product(a, b, repeats))
        })
        .collect()
}

/// Median GFLOP/s of `c = a b` into a preallocated output, timed by the project's harness:
/// `repeats` timings after one warm-up, each of as many products as fill about 20 ms.
fn time_product(a: MatRef<'_>, b: MatRef<'_>, repeats: usize) -> f64 {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut c = vec![0.0f32; m * n];
    let mut product = || gemm(a, b, &mut c, false, Parallelism::Threaded);
    product().expect("shapes agree");
    let start = Instant::now();
    product().expect("shapes agree");
    let calls = ((0.02 / start.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 100_000);
    let timed = Benchmark::new(repeats)
        .warmup(1)
        .run(|| (0..calls).try_for_each(|_| product()))
        .expect("shapes agree and repeats >= MIN_RUNS");
    2.0 * (m * k * n * calls) as f64 / timed.seconds.median / 1e9
}
