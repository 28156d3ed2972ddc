#!/usr/bin/python3
"""load_subnet_torch.py: run a sub-network that supernest found, in plain PyTorch.

`supernest export --checkpoint RUN --subnet S -o model.h5` writes one
sub-network's sliced weights and the preprocessing it expects to an HDF5
file (format "supernest-model", io/FORMAT.md).  This file turns that into an
ordinary torch.nn.Module, with no dependency on supernest or on the rest of
this repository (copy it next to your application):

    from load_subnet_torch import load_model
    model, preprocess, info = load_model("model.h5")
    tokens = preprocess(images_uint8)          # (N, rows, cols) -> (N, T, patch^2),
                                               # with a stem the images (N, 1, rows, cols)
    with torch.no_grad():
        logits = model(tokens)                 # (N, n_classes)

`load_model` refuses files of another format or another format_version
MAJOR, and verifies every dataset's `checksum` attribute (XXH3-64 of the
raw float32 bytes) when python3-xxhash is installed (otherwise it warns
and skips the verification).

The model (pre-LN transformer encoder, as src/model.c):
    with a convolutional stem of n = 2 or 3 convolutions (/config stem_channels
    C1, C2[, C3]; weights stem.conv1.* .. stem.conv<n>.*):
        y = gelu_tanh(conv_n(... gelu_tanh(conv1(images))))
            conv1 3x3, 1 -> C1, zero padding n, stride 1;
            conv2 .. conv_n 3x3, C(k-1) -> Ck, no padding, stride 2
        tokens = the g x g blocks of y, g = patch / 2^(n-1), position-major
                 (channels last)
    x = tokens @ patch_embed.weight^T + patch_embed.bias + pos_embed
    per block i (h_i heads of head_dim D, MLP width f_i, read off the shapes):
        x = x + proj(attn(qkv(LN1(x))))     qkv rows head-major: [q(D) k(D) v(D)] per head
        x = x + fc2(gelu_tanh(fc1(LN2(x))))  attn = softmax(q k^T / sqrt(D)) v
    logits = head(mean over tokens of norm(x))
LayerNorm eps is 1e-5.  Everything is computed in float32, like supernest.

Command line (needs Debian's /usr/bin/python3 with python3-torch, -h5py,
-numpy; -xxhash for checksums):

    load_subnet_torch.py MODEL.h5 [--images IDX(.gz)] [--labels IDX(.gz)]
                         [--limit N] [--logits-out FILE.npy] [--compare RAW_F32]
                         [--rtol R] [--no-verify]

prints the accuracy on the images (default: the Fashion-MNIST test set of
Debian's /usr/share/datasets/fashion-mnist).  --compare RAW_F32 reads
logits written by `supernest eval --model MODEL.h5 --logits RAW_F32
[--limit N]` (raw little-endian float32, (N, C)) and fails (exit 1) if they
differ from PyTorch's by more than the tolerance:

    max |torch - supernest| <= 1e-4 * max(1, max |logit of supernest|)

(--rtol changes the 1e-4).  Why this tolerance: both sides compute in
float32 from bit-identical inputs (the same weights, and tokens built by
the same formula in float32), but the matrix products, softmax, LayerNorm
and token mean sum in different orders (BLIS kernels vs. PyTorch's), so
results differ by a few float32 rounding errors (~6e-8 relative each)
accumulated over the layers: observed differences are 1e-7..2e-6 for
logits of size 0.3..3.5 (relative < 1e-6).  1e-4 leaves room for the
larger sums of bigger models, yet catches a wrong qkv layout or
preprocessing (differences 0.1..1) and, in the test's models, a wrong
attention scale or LayerNorm eps (differences 4e-4..2e-2).  A GELU variant
(erf instead of tanh) moves logits by only ~1e-4 relative or less, so to
pin it down use --rtol 1e-5, as tests/torch_export_test.sh does.

Exit status: 0 success, 1 error or --compare mismatch, 2 usage.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import warnings

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "supernest-model"
FORMAT_MAJOR = 1
LN_EPS = 1e-5
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


class FormatError(Exception):
    """The file is not a model this reader can load (wrong format, version,
    missing or inconsistent datasets, checksum mismatch)."""


# ---- the model ------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention with a head-major fused qkv projection."""

    def __init__(self, embed, heads, head_dim):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(embed, heads * 3 * head_dim)
        self.proj = nn.Linear(heads * head_dim, embed)

    def forward(self, x):
        B, T, _ = x.shape
        h, D = self.heads, self.head_dim
        # rows [hd*3D, hd*3D + D) are head hd's query, then its key, then its value
        qkv = self.qkv(x).view(B, T, h, 3, D).permute(3, 0, 2, 1, 4)  # (3, B, h, T, D)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, h * D))


class Mlp(nn.Module):
    def __init__(self, embed, hidden):
        super().__init__()
        self.fc1 = nn.Linear(embed, hidden)
        self.fc2 = nn.Linear(hidden, embed)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, embed, heads, head_dim, mlp):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed, eps=LN_EPS)
        self.attn = Attention(embed, heads, head_dim)
        self.ln2 = nn.LayerNorm(embed, eps=LN_EPS)
        self.mlp = Mlp(embed, mlp)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Stem(nn.Module):
    """The convolutional stem of n = len(channels) = 2 or 3 convolutions
    (channels C1, C2[, C3]): images (N, 1, rows, cols) -> tokens (N, T,
    g^2 * Cn), g = patch / 2^(n-1).  conv1 is 3x3, 1 -> C1, zero padding n,
    stride 1; conv2 .. conv<n> are 3x3, C(k-1) -> Ck, no padding, stride 2;
    each is followed by a tanh-approximated GELU.  stem.conv<k>.weight is
    stored in the file as (Ck, 9*C(k-1)) (C0 = 1): the convolution's weight
    in (out, 3, 3, in) order, flattened."""

    def __init__(self, channels, patch):
        super().__init__()
        channels = [int(c) for c in channels]
        n = len(channels)
        if n not in (2, 3) or min(channels) < 1:
            raise ValueError(f"stem channels {channels}: expected two or three positive counts")
        if patch < 1 or patch % 2 ** (n - 1):
            raise ValueError(f"patch {patch}: a stem of {n} convolutions needs a multiple of "
                             f"{2 ** (n - 1)}")
        self.n_convs = n
        self.grid = patch // 2 ** (n - 1)
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=n)
        for k in range(2, n + 1):
            setattr(self, f"conv{k}", nn.Conv2d(channels[k - 2], channels[k - 1], 3, stride=2))

    def forward(self, images):
        y = images
        for k in range(1, self.n_convs + 1):
            y = F.gelu(getattr(self, f"conv{k}")(y), approximate="tanh")
        return stem_tokens(y, self.grid)   # y (N, Cn, rows/2^(n-1), cols/2^(n-1))


def stem_tokens(y, g):
    """A stem's output maps y (N, C, h, w) -> tokens (N, (h/g)*(w/g), g*g*C):
    each token a g x g block, row-major over blocks, position-major inside
    one (value (i*g + j)*C + c)."""
    n, c, h, w = y.shape
    y = y.view(n, c, h // g, g, w // g, g).permute(0, 2, 4, 3, 5, 1)
    return y.reshape(n, (h // g) * (w // g), g * g * c)


class SubnetViT(nn.Module):
    """A supernest sub-network: tokens (N, T, P) -> logits (N, C), or with
    stem=((C1, C2[, C3]), patch) (a Stem of those channels) images (N, 1,
    rows, cols) -> logits.  Parameter names equal the dataset names under
    /weights of the model file."""

    def __init__(self, n_tokens, token_dim, embed, heads, mlp, head_dim, n_classes, stem=None):
        super().__init__()
        if len(heads) != len(mlp):
            raise ValueError(f"{len(heads)} heads values for {len(mlp)} MLP widths")
        self.stem = Stem(*stem) if stem else None
        self.patch_embed = nn.Linear(token_dim, embed)
        self.pos_embed = nn.Parameter(torch.zeros(n_tokens, embed))
        self.blocks = nn.ModuleList(Block(embed, h, head_dim, f) for h, f in zip(heads, mlp))
        self.norm = nn.LayerNorm(embed, eps=LN_EPS)
        self.head = nn.Linear(embed, n_classes)

    def forward(self, tokens):
        if self.stem is not None:
            tokens = self.stem(tokens)
        x = self.patch_embed(tokens) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


# ---- reading the file -----------------------------------------------------

def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _scalar(attrs, name, path, kind):
    if name not in attrs:
        raise FormatError(f"{path}: /config has no attribute '{name}'")
    a = np.asarray(attrs[name]).reshape(-1)
    if a.size != 1:
        raise FormatError(f"{path}: /config attribute '{name}' has {a.size} values, expected one")
    return kind(a[0])


def _ints(attrs, name, path):
    if name not in attrs:
        raise FormatError(f"{path}: /config has no attribute '{name}'")
    return [int(v) for v in np.asarray(attrs[name]).reshape(-1)]


def make_preprocess(patch, rows, cols, norm_mean, norm_std, stem=False):
    """The file's preprocessing: uint8 images (N, rows, cols) (numpy or torch)
    -> float32 tokens (N, (rows/patch)*(cols/patch), patch*patch), a pixel v
    becoming (v/255 - mean)/std evaluated in float32 (as supernest does),
    tokens row-major over patches, values row-major inside a patch.  With
    stem: the normalised images (N, 1, rows, cols), which the stem cuts."""
    f32 = np.float32
    lut = (np.arange(256, dtype=f32) / f32(255.0) - f32(norm_mean)) / f32(norm_std)
    lut = lut.astype(f32)

    def preprocess(images):
        if isinstance(images, torch.Tensor):
            images = images.cpu().numpy()
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.dtype != np.uint8:
            raise ValueError(f"preprocess: expected uint8 pixels (0..255), got {images.dtype}")
        if images.ndim != 3 or images.shape[1:] != (rows, cols):
            raise ValueError(f"preprocess: expected images of shape (N, {rows}, {cols}), "
                             f"got {images.shape}")
        n = images.shape[0]
        if stem:
            return torch.from_numpy(np.ascontiguousarray(lut[images].reshape(n, 1, rows, cols)))
        x = lut[images].reshape(n, rows // patch, patch, cols // patch, patch)
        x = x.transpose(0, 1, 3, 2, 4).reshape(n, (rows // patch) * (cols // patch), patch * patch)
        return torch.from_numpy(np.ascontiguousarray(x))

    return preprocess


def load_model(path, verify=True):
    """Reads the exported model file at path.

    Returns (model, preprocess, info): model a SubnetViT in eval mode
    (float32, CPU), preprocess(images_uint8 (N, rows, cols)) -> tokens
    (N, T, patch^2) the model expects (with a stem the normalised images
    (N, 1, rows, cols)), info a dict (subnet, embed, heads, mlp, depth,
    head_dim, n_classes, patch, image_rows, image_cols, stem_channels
    ([C1, C2] or [C1, C2, C3]; None without a stem), norm_mean, norm_std,
    params, format_version, program_version, created, checksums_verified).
    Raises FormatError for a file this reader must not load: another format
    or format_version MAJOR, missing, extra or misshapen datasets, or a
    checksum mismatch.  verify=False skips the checksums."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise FormatError(f"{path}: cannot open as HDF5 ({e})") from None
    with f:
        fmt = _text(f.attrs.get("format", ""))
        if fmt != FORMAT:
            hint = ("; it is a supernet checkpoint: make a model file with "
                    "`supernest export --checkpoint RUN --subnet S -o model.h5`"
                    if fmt == "supernest-checkpoint" else "")
            raise FormatError(f"{path}: format is '{fmt}', expected '{FORMAT}'{hint}")
        version = _text(f.attrs.get("format_version", ""))
        try:
            major, minor = (int(v) for v in version.split("."))
        except ValueError:
            raise FormatError(f"{path}: format_version '{version}' is not MAJOR.MINOR") from None
        if major != FORMAT_MAJOR:
            raise FormatError(f"{path}: format_version {version} is not supported: this reader "
                              f"understands format {FORMAT_MAJOR}.x only (a newer supernest "
                              f"wrote it? use the load_subnet_torch.py of that version)")
        if "config" not in f or "weights" not in f:
            raise FormatError(f"{path}: no /config or /weights group")
        cfg = f["config"].attrs
        head_dim = _scalar(cfg, "head_dim", path, int)
        n_classes = _scalar(cfg, "n_classes", path, int)
        patch = _scalar(cfg, "patch", path, int)
        rows = _scalar(cfg, "image_rows", path, int)
        cols = _scalar(cfg, "image_cols", path, int)
        norm_mean = _scalar(cfg, "norm_mean", path, np.float32)
        norm_std = _scalar(cfg, "norm_std", path, np.float32)
        depth = _ints(cfg, "max_depth", path)
        stem = _ints(cfg, "stem_channels", path) if "stem_channels" in cfg else None
        if stem is not None and (len(stem) not in (2, 3) or min(stem) <= 0):
            raise FormatError(f"{path}: /config stem_channels {stem}: expected two or three "
                              f"positive channel counts")
        subnet = _text(cfg.get("subnet", ""))
        program_version = _text(f.attrs.get("program_version", ""))
        created = _text(f.attrs.get("created", ""))

        weights, xxh = {}, None
        if verify:
            try:
                import xxhash
                xxh = xxhash.xxh3_64_hexdigest
            except ImportError:
                warnings.warn("python3-xxhash is not installed: dataset checksums NOT verified")
        for name, ds in f["weights"].items():
            if not isinstance(ds, h5py.Dataset):
                raise FormatError(f"{path}: /weights/{name} is not a dataset")
            if ds.dtype != np.float32:
                raise FormatError(f"{path}: /weights/{name} is {ds.dtype}, expected float32")
            a = np.ascontiguousarray(ds[()], dtype="<f4")
            if xxh is not None:
                want = _text(ds.attrs.get("checksum", ""))
                got = "xxh3-64:" + xxh(a.tobytes())
                if want != got:
                    raise FormatError(f"{path}: /weights/{name}: checksum mismatch (file says "
                                      f"'{want}', data hashes to '{got}'): damaged file")
            weights[name] = a

    def shape(name):
        if name not in weights:
            raise FormatError(f"{path}: missing dataset /weights/{name}")
        return weights[name].shape

    if len(shape("patch_embed.weight")) != 2:
        raise FormatError(f"{path}: /weights/patch_embed.weight is not 2-D")
    embed, token_dim = shape("patch_embed.weight")
    n_tokens = shape("pos_embed")[0]
    # a stem of n convolutions gives (patch / 2^(n-1))^2 outputs of C_n channels per token
    step = 2 ** (len(stem) - 1) if stem else 1
    if stem and patch > 0 and patch % step:
        raise FormatError(f"{path}: /config patch {patch}: a stem of {len(stem)} convolutions "
                          f"needs a multiple of {step}")
    per_token = (patch // step) ** 2 * stem[-1] if stem else patch * patch
    if patch <= 0 or rows % patch or cols % patch or per_token != token_dim or \
            (rows // patch) * (cols // patch) != n_tokens:
        raise FormatError(f"{path}: preprocessing ({rows}x{cols} images, patch {patch}) does not "
                          f"give the model's {n_tokens} tokens of {token_dim} values")
    n_blocks = 0
    while f"blocks.{n_blocks}.attn.qkv.weight" in weights:
        n_blocks += 1
    if n_blocks != sum(depth):
        raise FormatError(f"{path}: {n_blocks} blocks in /weights but /config max_depth "
                          f"{depth} sums to {sum(depth)}")
    heads, mlp = [], []
    for i in range(n_blocks):
        rows_qkv = shape(f"blocks.{i}.attn.qkv.weight")[0]
        if head_dim <= 0 or rows_qkv % (3 * head_dim):
            raise FormatError(f"{path}: blocks.{i}.attn.qkv.weight has {rows_qkv} rows, not a "
                              f"multiple of 3*head_dim = {3 * head_dim}")
        heads.append(rows_qkv // (3 * head_dim))
        mlp.append(shape(f"blocks.{i}.mlp.fc1.weight")[0])

    model = SubnetViT(n_tokens, token_dim, embed, heads, mlp, head_dim, n_classes,
                      (stem, patch) if stem else None)
    expected = model.state_dict()
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise FormatError(f"{path}: unexpected dataset /weights/{extra[0]}")
    state = {}
    for name, t in expected.items():
        # the stem's convolution weights are stored (out, 3*3*in): (out, 3, 3, in) flattened
        conv = t.ndim == 4
        want = (t.shape[0], t[0].numel()) if conv else tuple(t.shape)
        if tuple(shape(name)) != want:
            raise FormatError(f"{path}: /weights/{name} has shape {tuple(shape(name))}, "
                              f"expected {want}")
        w = torch.from_numpy(weights[name])
        if conv:
            w = w.view(t.shape[0], t.shape[2], t.shape[3], t.shape[1]).permute(0, 3, 1, 2)
        state[name] = w.contiguous()
    model.load_state_dict(state)
    model.eval()

    info = {
        "subnet": subnet, "embed": embed, "heads": heads, "mlp": mlp, "depth": depth,
        "head_dim": head_dim, "n_classes": n_classes, "n_tokens": n_tokens,
        "token_dim": token_dim, "patch": patch, "image_rows": rows, "image_cols": cols,
        "stem_channels": stem,
        "norm_mean": float(norm_mean), "norm_std": float(norm_std),
        "params": sum(a.size for a in weights.values()),
        "format_version": version, "program_version": program_version, "created": created,
        "checksums_verified": xxh is not None,
    }
    return model, make_preprocess(patch, rows, cols, norm_mean, norm_std, bool(stem)), info


# ---- IDX files (MNIST format), gzip'd or raw -------------------------------

def read_idx(path):
    """An IDX file (optionally gzip'd) as a numpy uint8 array."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX element type 0x{data[2]:02x}, expected 0x08 (uint8)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    count = int(np.prod(dims))
    if len(data) - 4 - 4 * ndim != count:
        raise ValueError(f"{path}: {len(data) - 4 - 4 * ndim} bytes of data for shape {dims}")
    return np.frombuffer(data, np.uint8, count, 4 + 4 * ndim).reshape(dims)


# ---- command line ----------------------------------------------------------

def logits_of(model, tokens, batch=256):
    out = []
    with torch.no_grad():
        for at in range(0, tokens.shape[0], batch):
            out.append(model(tokens[at:at + batch]))
    return torch.cat(out).numpy()


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="load_subnet_torch.py",
        description="Load a supernest model file (supernest export) into PyTorch and "
                    "evaluate it; optionally compare with supernest eval's logits.")
    p.add_argument("model", help="model file written by supernest export")
    p.add_argument("--images", default=os.path.join(DEFAULT_DATA, "t10k-images-idx3-ubyte.gz"),
                   help="IDX images, gzip'd or raw (default: Fashion-MNIST test)")
    p.add_argument("--labels", default=os.path.join(DEFAULT_DATA, "t10k-labels-idx1-ubyte.gz"),
                   help="IDX labels, gzip'd or raw (default: Fashion-MNIST test)")
    p.add_argument("--limit", type=int, default=0, help="use the first N images only (0: all)")
    p.add_argument("--logits-out", metavar="FILE.npy", help="save the logits (N, C) float32")
    p.add_argument("--compare", metavar="RAW_F32",
                   help="supernest eval --logits output to compare with (raw float32 (N, C))")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="--compare fails if max |difference| > RTOL * max(1, max |logit|) "
                        "(default 1e-4)")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum verification")
    a = p.parse_args(argv)
    if a.limit < 0:
        p.error("--limit must be >= 0")
    if not a.rtol > 0:
        p.error("--rtol must be > 0")
    prog = "load_subnet_torch.py"
    try:
        model, preprocess, info = load_model(a.model, verify=not a.no_verify)
        images, labels = read_idx(a.images), read_idx(a.labels)
    except (FormatError, ValueError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    if len(images) != len(labels):
        print(f"{prog}: error: {len(images)} images but {len(labels)} labels", file=sys.stderr)
        return 1
    n = min(a.limit, len(images)) if a.limit > 0 else len(images)
    try:
        tokens = preprocess(images[:n])
    except ValueError as e:
        print(f"{prog}: error: {a.images}: {e}", file=sys.stderr)
        return 1
    logits = logits_of(model, tokens)
    correct = int((logits.argmax(axis=1) == labels[:n]).sum())
    print(f"{info['subnet']} ({info['params']} params, checksums "
          f"{'verified' if info['checksums_verified'] else 'NOT verified'})")
    print(f"accuracy {correct / n:.6f} ({correct}/{n} images)")
    if a.logits_out:
        np.save(a.logits_out, logits)
    if a.compare:
        C = info["n_classes"]
        raw = np.fromfile(a.compare, dtype="<f4")
        if raw.size != n * C:
            print(f"{prog}: error: {a.compare}: {raw.size} float32 values, expected {n} images "
                  f"x {C} classes = {n * C} (same --limit as supernest eval?)", file=sys.stderr)
            return 1
        ref = raw.reshape(n, C).astype(np.float32)
        if not np.all(np.isfinite(ref)) or not np.all(np.isfinite(logits)):
            print(f"{prog}: error: non-finite logits", file=sys.stderr)
            return 1
        diff = float(np.max(np.abs(logits - ref)))
        tol = a.rtol * max(1.0, float(np.max(np.abs(ref))))
        agree = int((logits.argmax(axis=1) == ref.argmax(axis=1)).sum())
        print(f"max abs logit difference {diff:.3e} (tolerance {tol:.3e}); "
              f"argmax agrees on {agree}/{n} images")
        if diff > tol:
            i, j = np.unravel_index(np.argmax(np.abs(logits - ref)), ref.shape)
            print(f"{prog}: error: logits differ from {a.compare} by {diff:.3e} > {tol:.3e} "
                  f"(image {i}, class {j}: torch {logits[i, j]:.7g}, supernest {ref[i, j]:.7g})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
