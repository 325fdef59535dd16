#!/usr/bin/env python
"""PyTorch's GFLOP/s on a linear layer's three GEMM layouts, the shapes of `gemm_layouts`.

`fwd` is x @ W^T (W stored (out, in), read transposed), `dx` is dY @ W, `dw` is dY^T @ X (the
left operand transposed; the sum runs over the batch rows; W's gradient in W's layout). Each product writes a preallocated
output (`torch.matmul(a, b, out=c)`); the figure is the median of --repeats timings, each of as
many calls as fill about 20 ms. Same CSV columns as the Rust binary, so the two can be joined:

  cargo run -p benches --release --bin gemm_layouts -- --threads 1,2 > ours.csv
  ~/.cache/tinytorch-peers/bin/python benches/peers/torch_gemm_layouts.py --threads 1,2 > torch.csv
"""
import argparse, statistics, time

import torch

PRESETS = {
    "nanogpt-baby": (12 * 64, [("qkv", 128, 384), ("proj", 128, 128), ("fc", 128, 512),
                               ("fc2", 512, 128), ("head", 128, 65)]),
    "tinytorch-tinystories": (32 * 128, [("qkv", 256, 768), ("proj", 256, 256), ("fc", 256, 1024),
                                         ("fc2", 1024, 256), ("head", 256, 65)]),
}


def rate(a, b, repeats):
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    c = torch.empty(m, n)
    torch.matmul(a, b, out=c)
    t0 = time.perf_counter()
    torch.matmul(a, b, out=c)
    once = max(time.perf_counter() - t0, 1e-7)
    calls = min(max(int(0.02 / once), 1), 100_000)
    flops = 2.0 * m * k * n
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.matmul(a, b, out=c)
        rates.append(flops * calls / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--preset", choices=sorted(PRESETS))
    args = p.parse_args()
    print(f"# torch {torch.__version__}, cpu_capability {torch.backends.cpu.get_cpu_capability()}")
    print("preset,layer,layout,m,k,n,threads,gflops")
    torch.manual_seed(7)
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for preset, (rows, layers) in PRESETS.items():
            if args.preset and preset != args.preset:
                continue
            for layer, fan_in, fan_out in layers:
                x, w, dy = torch.randn(rows, fan_in), torch.randn(fan_out, fan_in), torch.randn(rows, fan_out)
                for layout, (a, b) in [("fwd", (x, w.t())), ("dx", (dy, w)), ("dw", (dy.t(), x))]:
                    g = rate(a, b, args.repeats)
                    print(f"{preset},{layer},{layout},{a.shape[0]},{a.shape[1]},{b.shape[1]},{threads},{g:.1f}")


if __name__ == "__main__":
    main()
