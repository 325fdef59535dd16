"""PyTorch peer of the structured-pruning latency in examples/compress.rs: the same MLPs, eval mode,
no_grad, 2 threads, median of 2,000 runs at batch 1 and 300 at batch 256. Run with the peers venv:
~/.cache/tinytorch-peers/bin/python models/examples/torch_mlp_latency.py"""
import time, torch
torch.set_num_threads(2)
def med(f, n):
    for _ in range(n // 10 + 1): f()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[n // 2]
for sizes in ([784, 128, 64, 10], [784, 64, 32, 10]):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    m = torch.nn.Sequential(*layers[:-1]).eval()
    with torch.no_grad():
        r = [med(lambda: m(x), n) * 1e6 for x, n in ((torch.randn(1, 784), 2000), (torch.randn(256, 784), 300))]
    print(sizes, "batch 1: %.1f us, batch 256: %.1f us" % tuple(r))
