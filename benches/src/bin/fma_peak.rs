//! The machine's `f32` FMA peak: GFLOP/s per thread count, for 256-bit (AVX2) and 512-bit
//! (AVX-512) fused multiply-add chains.
//!
//! Each thread runs 12 independent FMA chains on registers (no memory traffic): enough chains
//! to cover the FMA latency (4-5 cycles) on two FMA ports, so the loop runs at the issue limit.
//! One FMA of a `W`-lane register counts as `2 W` flops. The peak is the ceiling every GEMM and
//! training-step figure in `benches/README.md` is reported against (as a fraction of it).
//!
//! `cargo run --release -p benches --bin fma_peak -- --threads 1,2`

use std::time::Instant;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "f32 FMA throughput probe (GFLOP/s per thread count, AVX2 and AVX-512)")]
struct Args {
    /// Thread counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Iterations of the 12-chain loop per thread and repeat.
    #[arg(long, default_value_t = 50_000_000)]
    iterations: u64,
    /// Repeats per measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

/// Independent FMA chains per thread.
const CHAINS: u64 = 12;

fn main() {
    let args = Args::parse();
    if args.threads.contains(&0) {
        eprintln!(
            "error: --threads takes positive thread counts, got {:?}",
            args.threads
        );
        std::process::exit(2);
    }
    println!(
        "FMA peak probe: {CHAINS} independent chains per thread, {} iterations, best of {}",
        args.iterations, args.repeats
    );
    let kinds = probes();
    if kinds.is_empty() {
        println!("this CPU has neither AVX2+FMA nor AVX-512: no FMA probe to run");
        return;
    }
    for (name, lanes, probe) in kinds {
        for &threads in &args.threads {
            let flops = 2.0 * lanes as f64 * (CHAINS * args.iterations) as f64 * threads as f64;
            let best = (0..args.repeats.max(1))
                .map(|_| run(threads, args.iterations, probe))
                .fold(f64::INFINITY, f64::min);
            println!(
                "{name:<8} {threads:>2} threads: {:>7.1} GFLOP/s ({:.1} per thread)",
                flops / best / 1e9,
                flops / best / 1e9 / threads as f64
            );
        }
    }
}

type Probe = fn(u64) -> f32;

/// Seconds for `threads` threads to each run `probe(iterations)`.
fn run(threads: usize, iterations: u64, probe: Probe) -> f64 {
    let start = Instant::now();
    let sink: f32 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || probe(iterations)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    let seconds = start.elapsed().as_secs_f64();
    // Keep the result alive so the chains cannot be optimized away.
    std::hint::black_box(sink);
    seconds
}

/// The probes this CPU can run: (name, f32 lanes, function).
fn probes() -> Vec<(&'static str, usize, Probe)> {
    #[allow(unused_mut)]
    let mut out: Vec<(&'static str, usize, Probe)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY (of the call inside): the CPU has AVX2 and FMA, checked on the line above.
            out.push(("avx2", 8, |n| unsafe { x86::fma_chains_256(n) }));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY (of the call inside): the CPU has AVX-512F, checked on the line above.
            out.push(("avx512", 16, |n| unsafe { x86::fma_chains_512(n) }));
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 12 chains of `acc = acc * m + a` on 256-bit registers, `n` rounds.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_chains_256(n: u64) -> f32 {
        let m = _mm256_set1_ps(0.999_999);
        let a = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..n {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, m, a);
            }
        }
        let mut total = _mm256_setzero_ps();
        for r in acc {
            total = _mm256_add_ps(total, r);
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), total);
        lanes.iter().sum()
    }

    /// 12 chains of `acc = acc * m + a` on 512-bit registers, `n` rounds.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_chains_512(n: u64) -> f32 {
        let m = _mm512_set1_ps(0.999_999);
        let a = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..n {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(*r, m, a);
            }
        }
        let mut total = _mm512_setzero_ps();
        for r in acc {
            total = _mm512_add_ps(total, r);
        }
        _mm512_reduce_add_ps(total)
    }
}
