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

use clap::Parser;
use tensor::gemm::{gemm, MatRef, Parallelism};
use tensor::TensorRng;

#[derive(Parser, Debug)]
#[command(about = "GFLOP/s of a linear layer's three GEMM layouts on the training presets' shapes")]
struct Args {
    /// Thread counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Timings per product; the median is reported.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Only the preset of this name (`nanogpt-baby` or `tinytorch-tinystories`).
    #[arg(long)]
    preset: Option<String>,
}

/// The linear layers of one preset: `rows` = batch * block, and `(in, out)` per layer.
struct Layers {
    preset: &'static str,
    rows: usize,
    shapes: &'static [(&'static str, usize, usize)],
}

const PRESETS: &[Layers] = &[
    Layers {
        preset: "nanogpt-baby",
        rows: 12 * 64,
        shapes: &[
            ("qkv", 128, 384),
            ("proj", 128, 128),
            ("fc", 128, 512),
            ("fc2", 512, 128),
            ("head", 128, 65),
        ],
    },
    Layers {
        preset: "tinytorch-tinystories",
        rows: 32 * 128,
        shapes: &[
            ("qkv", 256, 768),
            ("proj", 256, 256),
            ("fc", 256, 1024),
            ("fc2", 1024, 256),
            ("head", 256, 65),
        ],
    },
];

fn main() {
    let args = Args::parse();
    if args.threads.contains(&0) || args.repeats == 0 {
        eprintln!("error: --threads and --repeats take positive values");
        std::process::exit(2);
    }
    let presets: Vec<&Layers> = PRESETS
        .iter()
        .filter(|p| args.preset.as_deref().is_none_or(|name| name == p.preset))
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
                for &(layer, fan_in, fan_out) in preset.shapes {
                    for (layout, gflops) in time_layer(preset.rows, fan_in, fan_out, args.repeats) {
                        println!(
                            "{},{layer},{layout},{},{threads},{gflops:.1}",
                            preset.preset,
                            layout_shape(layout, preset.rows, fan_in, fan_out),
                        );
                    }
                }
            }
        });
    }
}

/// `m,k,n` of a layout, as printed.
fn layout_shape(layout: &str, rows: usize, fan_in: usize, fan_out: usize) -> String {
    let (m, k, n) = match layout {
        "fwd" => (rows, fan_in, fan_out),
        "dx" => (rows, fan_out, fan_in),
        _ => (fan_out, rows, fan_in),
    };
    format!("{m},{k},{n}")
}

/// GFLOP/s of the three layouts of one layer.
fn time_layer(
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    repeats: usize,
) -> Vec<(&'static str, f64)> {
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
        .map(|(name, (a, b))| (name, time_product(a, b, repeats)))
        .collect()
}

/// Median GFLOP/s of `c = a b` into a preallocated output.
fn time_product(a: MatRef<'_>, b: MatRef<'_>, repeats: usize) -> f64 {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut c = vec![0.0f32; m * n];
    let mut run = || gemm(a, b, &mut c, false, Parallelism::Threaded).expect("shapes agree");
    let flops = 2.0 * (m * k * n) as f64;
    // Calls per timing: enough for about 20 ms (from one warm call).
    run();
    let start = Instant::now();
    run();
    let once = start.elapsed().as_secs_f64().max(1e-7);
    let calls = ((0.02 / once) as usize).clamp(1, 100_000);
    let mut rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                run();
            }
            flops * calls as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
