"""PyTorch eager on the GPU, for the configurations of experiments/gpu-targets.toml.

A measuring tool run beside joulebench in one sitting by scripts/gpu-check.sh
(part `torch`): the same architectures, batch sizes and data (gpu-data/ from
scripts/pack-gpu-data.sh), AdamW (lr 1e-3, wd 0.01), f32 or bf16 autocast.

Per configuration it trains 30 warm-up steps, then times about 3 s of steps with CUDA
events (one event pair per step; median and mean reported) and reads NVML's
total-energy counter (mJ) around the timed steps, after a device sync at both
edges. The data sit on the device (a PyTorch user's usual loop), so host-side
batching is not in the step time.

Usage: python3 torch-gpu-reference.py [DATA_DIR=gpu-data] [STEPS=200]
(the timed steps fill about 3 s, at least STEPS/4 of them)
Prints one `RESULT` line per configuration and a JSON list on the last line.
"""
import gzip, json, os, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import pynvml
except ImportError:  # nvidia-ml-py
    pynvml = None


def idx(path):
    buf = gzip.open(path, "rb").read()
    nd = buf[3]
    dims = struct.unpack(">" + "I" * nd, buf[4:4 + 4 * nd])
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def mlp(hidden):
    layers, w = [], 784
    for h in hidden:
        layers += [nn.Linear(w, h), nn.ReLU()]
        w = h
    return nn.Sequential(*layers, nn.Linear(w, 10))


def cnn(c1, c2, fc):
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 49, fc), nn.ReLU(), nn.Linear(fc, 10))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Gpt(nn.Module):
    """Pre-norm GPT as joulebench's char-transformer: learned positions, tied head."""

    def __init__(self, vocab, d, layers, heads, context):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, x):
        h = self.tok(x) + self.pos[: x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        return self.ln_f(h) @ self.tok.weight.t()


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "gpu-data"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    dev = torch.device("cuda:0")
    torch.manual_seed(0)
    xs = torch.tensor(idx(f"{data}/fashion-mnist/train-images-idx3-ubyte.gz")[:3000].reshape(-1, 784),
                      dtype=torch.float32, device=dev) / 255.0
    ys = torch.tensor(idx(f"{data}/fashion-mnist/train-labels-idx1-ubyte.gz")[:3000], dtype=torch.long, device=dev)
    text = b"".join(open(os.path.join(data, "fortunes", f), "rb").read()
                    for f in sorted(os.listdir(os.path.join(data, "fortunes"))))
    vocab = sorted(set(text))
    lut = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([lut[c] for c in text[:400_000]], dtype=torch.long, device=dev)
    nvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            nvml = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as e:  # noqa: BLE001 - report and go on without energy
            print(f"nvml unavailable: {e}")
    configs = [
        ("mlp", "f32", lambda: mlp([1024, 1024]), 512),
        ("cnn", "f32", lambda: cnn(32, 64, 128), 128),
        ("mlp", "bf16", lambda: mlp([1024, 1024]), 512),
        ("cnn", "bf16", lambda: cnn(32, 64, 128), 128),
        ("gpt", "f32", lambda: Gpt(len(vocab), 512, 6, 8, 256), 64),
        ("gpt", "bf16", lambda: Gpt(len(vocab), 512, 6, 8, 256), 64),
    ]
    out = []
    for name, prec, make, bs in configs:
        torch.manual_seed(0)
        model = make().to(dev)
        params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        g = torch.Generator(device=dev).manual_seed(0)

        def batch():
            if name == "gpt":
                start = torch.randint(0, ids.numel() - 257, (bs,), device=dev, generator=g)
                win = ids[start[:, None] + torch.arange(257, device=dev)]
                return win[:, :-1], win[:, 1:]
            i = torch.randint(0, xs.shape[0], (bs,), device=dev, generator=g)
            return xs[i], ys[i]

        def step():
            x, y = batch()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
                logits = model(x)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        for _ in range(20):
            step()
        torch.cuda.synchronize()
        # As many steps as fill about 3 s, so NVML's counter (updated every
        # few tens of ms) resolves the window; at least `steps`/4.
        tw = time.perf_counter()
        for _ in range(10):
            step()
        torch.cuda.synchronize()
        per = (time.perf_counter() - tw) / 10
        n = int(min(20000, max(steps // 4, 3.0 / per)))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml) if nvml else None
        t0 = time.perf_counter()
        for a, b in ev:
            a.record()
            loss = step()
            b.record()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        e1 = pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml) if nvml else None
        ms = sorted(a.elapsed_time(b) for a, b in ev)
        joules = (e1 - e0) / 1000.0 if nvml else float("nan")
        r = {"model": name, "precision": prec, "batch": bs, "params": params, "steps": n,
             "ms_median": ms[n // 2], "ms_wall_mean": 1000 * wall / n, "j_per_step": joules / n,
             "window_s": wall, "loss": float(loss)}
        out.append(r)
        print("RESULT " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
              flush=True)
        del model, opt
        torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
