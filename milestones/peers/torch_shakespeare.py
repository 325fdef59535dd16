"""The `transformer-2017 --dataset shakespeare` run, written in PyTorch, for a wall-time comparison.

Run by hand, side by side with the milestone (PyTorch is never a dependency of the project):

    ~/.cache/tinytorch-peers/bin/python milestones/peers/torch_shakespeare.py \
        --data-dir ../shared/datasets --threads 2
    cargo run --release -p milestones --bin transformer-2017 -- \
        --dataset shakespeare --data-dir ../shared/datasets

It does what the milestone does, step for step:
- data: `shakespeare/tinyshakespeare_like.txt`, first 90% of the characters train, last 10%
  validation; the vocabulary is the sorted set of training characters;
- model: nanoGPT's CPU config (4 layers, 4 heads, n_embd 128, block 64, no biases, head tied to
  the token embedding, dropout 0, exact GELU), nanoGPT's initialisation;
- training: 2000 iterations of batch 12, windows drawn uniformly, AdamW (lr 1e-3, betas
  (0.9, 0.99), eps 1e-8, weight decay 0.1 on parameters with 2+ dims), linear warmup for 100
  steps then cosine to 1e-4, gradient norm clipped at 1.0;
- evaluation every 250 steps and at the end: mean loss over the first 40 batches of
  non-overlapping validation windows, under `torch.no_grad()` in eval mode.

Prints the final validation loss and the wall time of the training loop (evaluations included,
start-up and data loading excluded, as the milestone's `seconds` includes only slightly more).
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(c, bias=False)
        self.c_attn = nn.Linear(c, 3 * c, bias=False)
        self.attn_proj = nn.Linear(c, c, bias=False)
        self.ln_2 = nn.LayerNorm(c, bias=False)
        self.c_fc = nn.Linear(c, 4 * c, bias=False)
        self.mlp_proj = nn.Linear(4 * c, c, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, block, layers, heads, c):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(block, c)
        self.blocks = nn.ModuleList(Block(c, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids, targets):
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def lr_at(step, max_lr=1e-3, min_lr=1e-4, warmup=100, total=2000):
    if step < warmup:
        return max_lr * (step + 1) / (warmup + 1)
    if step > total:
        return min_lr
    ratio = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("TINYTORCH_DATA", "../shared/datasets"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(os.path.join(args.data_dir, "shakespeare", "tinyshakespeare_like.txt")) as f:
        text = f.read()
    cut = len(text) * 9 // 10
    train_text, val_text = text[:cut], text[cut:]
    chars = sorted(set(train_text))
    index = {ch: i for i, ch in enumerate(chars)}
    train = torch.tensor([index[ch] for ch in train_text], dtype=torch.long)
    val = torch.tensor([index[ch] for ch in val_text if ch in index], dtype=torch.long)

    block, batch, eval_every, eval_batches = 64, 12, 250, 40
    model = Gpt(len(chars), block, 4, 4, 128)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99), eps=1e-8,
    )
    windows = (len(val) - 1) // block
    starts = torch.arange(windows) * block
    val_x = torch.stack([val[s : s + block] for s in starts[: eval_batches * batch]])
    val_y = torch.stack([val[s + 1 : s + block + 1] for s in starts[: eval_batches * batch]])

    def evaluate():
        model.eval()
        with torch.no_grad():
            losses = [
                model(val_x[i : i + batch], val_y[i : i + batch]).item()
                for i in range(0, len(val_x), batch)
            ]
        model.train()
        return sum(losses) / len(losses)

    start = time.perf_counter()
    val_loss = float("nan")
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total=args.steps)
        ix = torch.randint(len(train) - block, (batch,))
        x = torch.stack([train[i : i + block] for i in ix])
        y = torch.stack([train[i + 1 : i + block + 1] for i in ix])
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step > 0 and step % eval_every == 0) or step + 1 == args.steps:
            val_loss = evaluate()
            print(f"step {step}: train {loss.item():.4f} val {val_loss:.4f} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
    seconds = time.perf_counter() - start
    tokens_per_s = args.steps * batch * block / seconds
    summary = {"torch": torch.__version__, "threads": args.threads, "steps": args.steps,
               "val_loss": round(val_loss, 4), "seconds": round(seconds, 2),
               "train_tokens_per_s": round(tokens_per_s, 1)}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)


if __name__ == "__main__":
    main()
