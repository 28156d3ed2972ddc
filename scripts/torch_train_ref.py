#!/usr/bin/python3
"""torch_train_ref.py: one architecture trained alone in PyTorch with supernest's recipe.

The quality report (docs/QUALITY.md) compares sub-networks cut from the
supernet with the same architectures trained alone by supernest
(`supernest train --fixed-subnet S`).  This script trains the same
architecture in PyTorch with the same recipe, so that a stand-alone
accuracy can be told apart from an artefact of supernest's own code:

    model      load_subnet_torch.SubnetViT (the model of src/model.c), with
               --stem C1,C2 or C1,C2,C3 the convolutional stem of `supernest
               train --stem` (load_subnet_torch.Stem): n = 2 or 3 3x3
               convolutions, each with GELU, conv1 zero-padded by n with
               stride 1, the others unpadded with stride 2, a token the
               (p/2^(n-1))^2 outputs of the last at its patch
    init       matrices and positions N(0, 0.02), every stem convolution
               N(0, 2/fan-in) (fan-in 9 * its input channels), biases 0,
               LayerNorm gains 1
    data       Fashion-MNIST IDX files; --val-size training images held out
               (a random split); pixels (v/255 - mean)/std with the mean and
               std of the training images kept; PxP patches as tokens; a new
               random order every epoch; steps of --batch-size images, as many
               as ceil(kept images / batch) per epoch; with --hflip each
               training image mirrored left-right with probability 1/2, then
               with --shift N moved by dy, dx uniform in [-N, N] (black moved
               in), drawn anew each time it is seen (supernest train's
               --hflip and --shift); validation and test images unaltered
    loss       cross-entropy with label smoothing
    optimizer  AdamW, decoupled weight decay on the weight matrices (and
               convolution kernels) only,
               linear warm-up then cosine decay to --min-lr (sn_lr_at),
               gradient norm clipped

It is not a bit-for-bit twin (the random streams differ) but the same
recipe.  Prints the validation and test accuracy as one JSON line, and
with --log-every a line every N steps on stderr.

    /usr/bin/python3 scripts/torch_train_ref.py --subnet STRING [--epochs 6]
        [--batch-size 128] [--lr 0.001] [--seed 1] [--threads 2] ...
"""
import argparse
import json
import math
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as exc:
    sys.exit(f"torch_train_ref.py: {exc}; install python3-torch and python3-numpy (Debian) "
             "for /usr/bin/python3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_subnet_torch import DEFAULT_DATA, SubnetViT, make_preprocess, read_idx  # noqa: E402
from supernet_torch import parse_subnet  # noqa: E402


def usage_error(msg):
    """Bad arguments: one line naming the problem, exit 2."""
    print(f"torch_train_ref.py: {msg}", file=sys.stderr)
    sys.exit(2)


def lr_at(step, lr, min_lr, warmup, total):
    """supernest's schedule (src/optim.c sn_lr_at)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = total - warmup
    if span <= 0:
        return lr
    frac = min(1.0, (step - warmup) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


def augment(images, shift, flip, rng):
    """uint8 images (N, rows, cols), each mirrored left-right with
    probability 1/2 (flip), then moved by dy, dx uniform in [-shift, shift]
    with black (0) moved in."""
    out = images.copy()
    n, rows, cols = out.shape
    if flip:
        mirrored = rng.random(n) < 0.5
        out[mirrored] = out[mirrored, :, ::-1]
    if shift:
        dy = rng.integers(-shift, shift + 1, n)
        dx = rng.integers(-shift, shift + 1, n)
        framed = np.zeros((n, rows + 2 * shift, cols + 2 * shift), dtype=out.dtype)
        framed[:, shift:shift + rows, shift:shift + cols] = out
        for i in range(n):  # pixel (y, x) moves to (y + dy, x + dx)
            y0, x0 = shift - dy[i], shift - dx[i]
            out[i] = framed[i, y0:y0 + rows, x0:x0 + cols]
    return out


def accuracy(model, tokens, labels, batch=500):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            right += (model(tokens[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    model.train()
    return right / max(1, len(labels))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subnet", required=True, help="canonical sub-network string, e.g. "
                   "e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory of Fashion-MNIST IDX files")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=-1, help="-1: 5%% of the run")
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--train-subset", type=int, default=0, help="first N training images only")
    p.add_argument("--test-limit", type=int, default=0, help="first N test images only")
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--shift", type=int, default=0, help="augmentation: move each training image "
                   "by up to N pixels each way (0: off)")
    p.add_argument("--hflip", action="store_true", help="augmentation: mirror each training "
                   "image left-right with probability 1/2")
    p.add_argument("--stem", default="none", help="C1,C2 or C1,C2,C3: the convolutional "
                   "stem of `supernest train --stem`, two or three convolutions (none: without)")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--log-every", type=int, default=0)
    a = p.parse_args()
    try:
        net = parse_subnet(a.subnet)
    except ValueError as exc:
        usage_error(str(exc))
    if a.patch < 1:
        usage_error(f"--patch {a.patch}: expected a positive patch size")
    stem = None
    if a.stem != "none":
        try:
            stem = tuple(int(v) for v in a.stem.split(","))
        except ValueError:
            stem = ()
        if len(stem) not in (2, 3) or min(stem) < 1:
            usage_error(f"--stem '{a.stem}': expected none, two channel counts C1,C2 or three "
                        "C1,C2,C3")
        if a.patch % (2 ** (len(stem) - 1)):
            usage_error(f"--patch {a.patch}: a stem of {len(stem)} convolutions needs a "
                        f"multiple of {2 ** (len(stem) - 1)}")
    if a.batch_size < 1 or a.epochs < 1 or a.steps < 0 or a.val_size < 0 or a.shift < 0:
        usage_error("--batch-size and --epochs must be positive, --steps, --val-size and "
                    "--shift not negative")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    try:
        images = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz"))
        test_images = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"))
        test_labels = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"))
    except (OSError, ValueError) as exc:
        sys.exit(f"torch_train_ref.py: {exc}")
    if a.train_subset:
        images, labels = images[:a.train_subset], labels[:a.train_subset]
    if a.test_limit:
        test_images, test_labels = test_images[:a.test_limit], test_labels[:a.test_limit]
    if a.val_size >= len(labels):
        usage_error(f"--val-size {a.val_size} leaves no training images of {len(labels)}")
    order = rng.permutation(len(labels))
    val_idx, train_idx = order[:a.val_size], order[a.val_size:]
    kept = images[train_idx].astype(np.float64) / 255.0
    mean, std = float(kept.mean()), float(kept.std())
    rows, cols = images.shape[1:]
    if rows % a.patch or cols % a.patch:
        usage_error(f"--patch {a.patch} does not divide {rows}x{cols} images")
    if a.shift >= min(rows, cols):
        usage_error(f"--shift {a.shift}: the images are {rows}x{cols}, so a shift that large can "
                    "move all of an image out of the frame")
    augmenting = a.shift > 0 or a.hflip
    prep = make_preprocess(a.patch, rows, cols, mean, std, stem is not None)
    # augmented runs keep the training pixels and cut each step's tokens anew
    u_train = images[train_idx] if augmenting else None
    x_train = None if augmenting else prep(images[train_idx])
    y_train = torch.from_numpy(labels[train_idx].astype(np.int64))
    x_val, y_val = prep(images[val_idx]), torch.from_numpy(labels[val_idx].astype(np.int64))
    x_test, y_test = prep(test_images), torch.from_numpy(test_labels.astype(np.int64))

    n_tokens = (rows // a.patch) * (cols // a.patch)
    if not stem:
        token_dim = a.patch * a.patch
    else:
        token_dim = (a.patch // 2 ** (len(stem) - 1)) ** 2 * stem[-1]
    n_classes = int(max(labels.max(), test_labels.max())) + 1
    model = SubnetViT(n_tokens, token_dim, net["embed"], net["heads"], net["mlp"], a.head_dim,
                      n_classes, (stem, a.patch) if stem else None)
    decay, other = [], []
    with torch.no_grad():
        for name, t in model.named_parameters():
            if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "norm.weight":
                t.fill_(1.0)
            elif t.ndim == 4:  # every stem convolution (conv1..conv3): He's, fan-in 9*in
                t.normal_(0.0, math.sqrt(2.0 / t[0].numel()))
            elif t.ndim == 2:  # the weight matrices and the positions
                t.normal_(0.0, 0.02)
            else:
                t.zero_()
            (decay if t.ndim in (2, 4) and name != "pos_embed" else other).append(t)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    n, B = len(y_train), a.batch_size
    per_epoch = (n + B - 1) // B
    total = a.steps if a.steps else a.epochs * per_epoch
    warmup = a.warmup if a.warmup >= 0 else total // 20
    stream = np.empty(0, dtype=np.int64)
    t0 = time.perf_counter()
    for step in range(total):
        while len(stream) < B:
            stream = np.concatenate([stream, rng.permutation(n)])
        idx, stream = torch.from_numpy(stream[:B]), stream[B:]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.lr, a.min_lr, warmup, total)
        opt.zero_grad(set_to_none=True)
        if augmenting:
            xb = prep(augment(u_train[idx.numpy()], a.shift, a.hflip, rng))
        else:
            xb = x_train[idx]
        loss = F.cross_entropy(model(xb), y_train[idx],
                               label_smoothing=a.label_smoothing)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        if a.log_every and ((step + 1) % a.log_every == 0 or step + 1 == total):
            print(f"step {step + 1}/{total} loss {loss.item():.4f} "
                  f"{B * (step + 1) / (time.perf_counter() - t0):.1f} images/s", file=sys.stderr)
    seconds = time.perf_counter() - t0
    print(json.dumps({"subnet": a.subnet, "stem": a.stem, "shift": a.shift, "hflip": a.hflip,
                      "steps": total, "epochs": total / per_epoch,
                      "val_accuracy": round(accuracy(model, x_val, y_val), 6),
                      "test_accuracy": round(accuracy(model, x_test, y_test), 6),
                      "test_images": len(y_test), "train_seconds": round(seconds, 1),
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
