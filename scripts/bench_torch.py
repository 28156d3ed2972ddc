"""bench_torch.py: the PyTorch baseline of the training-throughput benchmark.

The largest sub-network of the default space as a plain ViT (embed 192, 6
pre-LN blocks of 3 heads x 64, MLP 768 with tanh GELU, 49 tokens of 16
values, mean pooling, 10 classes) trained with AdamW on random data.
Prints one JSON line:
    {"images_per_s": ..., "step_ms": ..., "threads": ..., "gflops": ...}

PyTorch's float32 GEMMs go to the system libblas.so.3 (BLIS on Debian when
that is the selected alternative), so the caller's BLIS_NUM_THREADS and
BLIS_ARCH_TYPE apply to it as to supernest.

MACs of one forward pass of one image (T 49, P 16, E 192, H 3, D 64,
F 768, C 10, L 6), linear layers and the two attention products:
    patch embedding  T P E                    =     150,528
    per block: qkv   T E 3HD                  =   5,419,008
               q k^T and att v   2 H T T D    =     921,984
               proj  T HD E                   =   1,806,336
               fc1 + fc2   2 T E F            =  14,450,688
        6 blocks                              = 135,588,096
    classifier  E C                           =       1,920
    total                                     = 135,740,544
A training step costs about 3x the forward (forward, and backward to
inputs and to weights), 2 FLOPs per MAC: 6 * MACs FLOPs per image.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

T, P, E, H, D, MLP, C, L = 49, 16, 192, 3, 64, 768, 10, 6
MACS = (T * P * E + L * (T * E * 3 * H * D + 2 * H * T * T * D + T * H * D * E
                         + 2 * T * E * MLP) + E * C)
assert MACS == 135_740_544


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.qkv, self.proj = nn.Linear(E, 3 * H * D), nn.Linear(H * D, E)
        self.fc1, self.fc2 = nn.Linear(E, MLP), nn.Linear(MLP, E)

    def forward(self, x):
        B = x.shape[0]
        # head by head [q k v], as supernest lays out its qkv rows
        qkv = self.qkv(self.ln1(x)).view(B, T, H, 3, D).permute(3, 0, 2, 1, 4)
        att = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / D ** 0.5, dim=-1)
        x = x + self.proj((att @ qkv[2]).transpose(1, 2).reshape(B, T, H * D))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(P, E)
        self.pos = nn.Parameter(0.02 * torch.randn(T, E))
        self.blocks = nn.Sequential(*[Block() for _ in range(L)])
        self.norm, self.head = nn.LayerNorm(E), nn.Linear(E, C)

    def forward(self, tokens):
        x = self.blocks(self.patch(tokens) + self.pos)
        return self.head(self.norm(x).mean(dim=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ViT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    tokens = torch.randn(args.batch, T, P)
    labels = torch.randint(0, C, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(tokens), labels, label_smoothing=0.1).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = (time.perf_counter() - t0) / args.steps
    ips = args.batch / dt
    print(json.dumps({"images_per_s": round(ips, 2), "step_ms": round(1e3 * dt, 2),
                      "threads": args.threads, "gflops": round(6 * MACS * ips / 1e9, 2)}))


if __name__ == "__main__":
    main()
