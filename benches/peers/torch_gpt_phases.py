#!/usr/bin/env python
"""PyTorch's training step broken down by op family, like `train_step --phases`.

Runs the model and step of ../shared/bench/torch_gpt_bench.py (imported, not copied) under
torch.profiler and sums each step's CPU time into the families `train_step --phases` prints:
gemm, attention, norm, activations, loss, optimizer, and other (embeddings, copies, adds,
allocation, autograd bookkeeping: the step's wall time minus the families).

An op is counted once, under the outermost family that names it (the fused attention calls
matrix products: they count as attention, as ours do). Ops named by no family are walked into,
so a backward node (`MmBackward0`) is counted by the kernel it runs (`aten::mm`: gemm).

  ~/.cache/tinytorch-peers/bin/python benches/peers/torch_gpt_phases.py --preset nanogpt-baby --threads 2

Prints the median step without the profiler first (the profiler adds overhead to every op),
then the profiled means per family in ms and as shares of the profiled mean step. Compare
shares and the family sums, not the profiled total, with ours.
"""
import argparse, json, os, statistics, sys, time

here = os.path.dirname(os.path.abspath(__file__))
default_bench = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "bench"))

FAMILIES = [
    # (family, substrings of the op name, lower case); the first match wins.
    ("optimizer", ["optimizer.step", "adam"]),
    ("loss", ["cross_entropy", "nll_loss", "log_softmax", "logsoftmax"]),
    ("attention", ["scaled_dot_product", "flash_attention", "softmax"]),
    ("norm", ["layer_norm", "layernorm"]),
    ("activations", ["gelu"]),
    ("gemm", ["aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"]),
]
ORDER = ["gemm", "attention", "norm", "activations", "loss", "optimizer"]


def family_of(name):
    low = name.lower()
    for fam, keys in FAMILIES:
        if any(k in low for k in keys):
            return fam
    return None


def attribute(event, sums):
    """Adds `event`'s time to its family, or walks into its children when it has none."""
    fam = family_of(event.name)
    if fam is not None:
        sums[fam] += event.cpu_time_total
        return
    for child in event.cpu_children:
        attribute(child, sums)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="nanogpt-baby")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--bench-dir", default=default_bench, help="folder of torch_gpt_bench.py")
    p.add_argument("--json", default=None, help="write the breakdown here")
    a = p.parse_args()
    sys.path.insert(0, a.bench_dir)
    import torch
    import torch_gpt_bench as tb

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = dict(tb.PRESETS[a.preset])
    model = tb.GPT(cfg["vocab"], cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"],
                   cfg["bias"], cfg["tied"], "sdpa")
    if cfg["opt"] == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.99), weight_decay=cfg["wd"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    B, T, V = cfg["batch_size"], cfg["block_size"], cfg["vocab"]

    def step():
        idx = torch.randint(0, V, (B, T)); tgt = torch.randint(0, V, (B, T))
        loss = model(idx, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    plain = []
    for _ in range(a.steps):
        t0 = time.perf_counter(); step(); plain.append(time.perf_counter() - t0)
    median_ms = statistics.median(plain) * 1e3

    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        wall_ms = (time.perf_counter() - t0) * 1e3 / a.steps
    sums = {f: 0.0 for f in ORDER}
    for event in prof.events():
        if event.cpu_parent is None:
            attribute(event, sums)
    rows = [(f, sums[f] / 1e3 / a.steps) for f in ORDER]  # us -> ms per step
    counted = sum(ms for _, ms in rows)
    rows.append(("other (embeddings, copies, adds, autograd)", wall_ms - counted))
    info = dict(torch=torch.__version__, preset=a.preset, threads=a.threads,
                cpu_capability=torch.backends.cpu.get_cpu_capability())
    print("# " + json.dumps(info))
    print(f"{a.preset} threads={a.threads} median {median_ms:.3f} ms/step without the profiler, "
          f"{B * T / (median_ms / 1e3):.1f} tokens/s")
    print(f"per op family (profiled mean ms per step, share of the profiled mean step {wall_ms:.3f} ms):")
    for name, ms in rows:
        print(f"  {name:<42} {ms:>9.3f} ms {100 * ms / wall_ms:>5.1f}%")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(info, median_ms=median_ms, profiled_step_ms=wall_ms,
                           families_ms={n: ms for n, ms in rows}), f, indent=2)


if __name__ == "__main__":
    main()
