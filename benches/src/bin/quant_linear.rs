//! Int8 inference against `f32`: the cases of `../shared/bench/torch_quant_bench.py`, so the two
//! can run back to back on the same machine.
//!
//! ```text
//! cargo run -p benches --release --bin quant_linear -- --threads 2
//! ~/.cache/tinytorch-peers/bin/python ../shared/bench/torch_quant_bench.py --threads 2
//! ```
//!
//! Cases (random weights, seeded; speed does not depend on what a model learned):
//! - `linear/MxKxN`: one `Linear(K, N)` on an `(M, K)` batch, against `QuantizedLinear`;
//! - `mlp784/B`: the MNIST MLP 784-128-64-10 with ReLU on a batch of B images;
//! - `mlp784x512/B`: a wider MLP 784-512-512-10 with ReLU.
//!
//! The `f32` side runs `Linear` forwards under `no_grad`; the int8 side the same layers quantized
//! with `QuantizedLinear::from_linear` (dynamic activation quantization, which the int8 timing
//! includes). Flags: `--threads N` (default 2), `--samples N` (default 7), `--target SECONDS`
//! (time per sample, default 0.1), `--kernel best|avx512vnni|avx2|scalar` (default best).
//! Prints `case,shape,f32_us,int8_us,speedup` per case (the medians), the weight bytes of both
//! layer stacks, and the largest absolute output difference.

use std::time::Instant;

use autograd::{no_grad, Variable};
use clap::Parser;
use nn::activation::ReLU;
use nn::linear::Linear;
use nn::quantized_linear::QuantizedLinear;
use nn::Module;
use tensor::gemm::Parallelism;
use tensor::gemm_i8::I8Kernel;
use tensor::{Tensor, TensorRng};

/// Int8 inference against `f32` on the PyTorch script's cases.
#[derive(Parser, Debug)]
#[command(about = "Int8 inference against f32 (the cases of torch_quant_bench.py)")]
struct Cli {
    /// Threads of the compute pool.
    #[arg(long, default_value_t = 2, value_parser = positive)]
    threads: usize,
    /// Timed samples per case (the median is reported).
    #[arg(long, default_value_t = 7, value_parser = positive)]
    samples: usize,
    /// Seconds per sample.
    #[arg(long, default_value_t = 0.1)]
    target: f64,
    /// The int8 kernel: `best`, `avx512vnni`, `avx2` or `scalar`.
    #[arg(long, default_value = "best", value_parser = ["best", "avx512vnni", "avx2", "scalar"])]
    kernel: String,
}

/// The parsed arguments, with the kernel checked against the CPU.
struct Args {
    threads: usize,
    samples: usize,
    target: f64,
    kernel: I8Kernel,
}

/// A whole number of at least 1.
fn positive(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("needs a whole number of at least 1, got {v:?}")),
    }
}

fn parse_args() -> Result<Args, String> {
    let cli = Cli::parse();
    tensor::simd::simd_cap_from_env().map_err(|e| e.to_string())?;
    let kernel = match cli.kernel.as_str() {
        "avx512vnni" => I8Kernel::Avx512Vnni,
        "avx2" => I8Kernel::Avx2,
        "scalar" => I8Kernel::Scalar,
        _ => I8Kernel::best(),
    };
    if !kernel.is_available() {
        return Err(format!("this CPU cannot run the {} kernel", cli.kernel));
    }
    if !(cli.target.is_finite() && cli.target > 0.0) {
        return Err(format!(
            "--target needs a positive number of seconds, got {}",
            cli.target
        ));
    }
    Ok(Args {
        threads: cli.threads,
        samples: cli.samples,
        target: cli.target.max(1e-3),
        kernel,
    })
}

/// Median seconds per call: 3 warm-up calls, then `samples` samples of enough calls to last
/// about `target` seconds each (the PyTorch script's method).
fn time_it(mut f: impl FnMut(), samples: usize, target: f64) -> f64 {
    for _ in 0..3 {
        f();
    }
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((target / one).ceil() as usize).max(1);
    let mut v: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A stack of `Linear` layers with ReLU between them, in `f32` and in int8.
struct Stack {
    f32_layers: Vec<Linear>,
    int8_layers: Vec<QuantizedLinear>,
}

impl Stack {
    fn new(widths: &[usize], seed: u64) -> Stack {
        let mut rng = TensorRng::new(seed);
        let f32_layers: Vec<Linear> = widths
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], true, &mut rng))
            .collect();
        let int8_layers = f32_layers
            .iter()
            .map(|l| QuantizedLinear::from_linear(l).expect("finite weights"))
            .collect();
        Stack {
            f32_layers,
            int8_layers,
        }
    }

    fn forward_f32(&self, x: &Variable) -> Variable {
        let mut h = x.clone();
        for (i, l) in self.f32_layers.iter().enumerate() {
            h = l.forward(&h).expect("shapes fit");
            if i + 1 < self.f32_layers.len() {
                h = ReLU.forward(&h).expect("relu");
            }
        }
        h
    }

    fn forward_int8(&self, x: &Tensor, kernel: I8Kernel) -> Tensor {
        let mut h = x.clone();
        for (i, l) in self.int8_layers.iter().enumerate() {
            h = l
                .forward_with(kernel, &h, Parallelism::Threaded)
                .expect("shapes fit");
            if i + 1 < self.int8_layers.len() {
                h = h.relu();
            }
        }
        h
    }

    fn bytes(&self) -> (usize, usize) {
        let f32_bytes = self.f32_layers.iter().map(|l| 4 * l.num_parameters()).sum();
        let int8_bytes = self.int8_layers.iter().map(|l| l.size_bytes()).sum();
        (f32_bytes, int8_bytes)
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // rayon reads this when its global pool starts (on the first parallel kernel).
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    models::runtime::tune_allocator();
    println!(
        "# info {{\"threads\": {}, \"int8_kernel\": \"{:?}\", \"samples\": {}, \"target_s\": {}}}",
        args.threads, args.kernel, args.samples, args.target
    );
    let mut cases: Vec<(String, Vec<usize>, usize)> = Vec::new();
    for (m, k, n) in [
        (256, 784, 128),
        (2048, 128, 512),
        (2048, 512, 128),
        (1, 512, 512),
        (64, 1024, 1024),
    ] {
        cases.push((format!("linear/{m}x{k}x{n}"), vec![k, n], m));
    }
    for b in [1, 64, 256] {
        cases.push((format!("mlp784/{b}"), vec![784, 128, 64, 10], b));
        cases.push((format!("mlp784x512/{b}"), vec![784, 512, 512, 10], b));
    }
    println!("case,shape,f32_us,int8_us,speedup,f32_bytes,int8_bytes,max_abs_diff");
    for (i, (name, widths, m)) in cases.iter().enumerate() {
        let stack = Stack::new(widths, i as u64);
        let x = Tensor::rand_normal(&[*m, widths[0]], 0.0, 1.0, 1000 + i as u64).expect("shape");
        let xv = Variable::constant(x.clone());
        let f32_s = time_it(
            || {
                std::hint::black_box(no_grad(|| stack.forward_f32(&xv)));
            },
            args.samples,
            args.target,
        );
        let int8_s = time_it(
            || {
                std::hint::black_box(stack.forward_int8(&x, args.kernel));
            },
            args.samples,
            args.target,
        );
        let want = no_grad(|| stack.forward_f32(&xv)).value().to_vec();
        let got = stack.forward_int8(&x, args.kernel).to_vec();
        let diff = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (fb, ib) = stack.bytes();
        println!(
            "{name},{m}x{},{:.1},{:.1},{:.2},{fb},{ib},{diff:.4}",
            widths[0],
            f32_s * 1e6,
            int8_s * 1e6,
            f32_s / int8_s
        );
    }
}
