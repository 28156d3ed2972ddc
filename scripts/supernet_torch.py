"""supernet_torch.py: a PyTorch twin of supernest's supernet (src/model.c).

Functional, so that gradients can be taken with respect to one flat
parameter buffer laid out exactly as sn_param_table lays out the C buffer:
bind views with `bind_params`, run `subnet_forward`, and the buffer's .grad
is directly comparable with the C model's gradient buffer (zeros outside
the slices the sub-network used, and in the alignment padding).

Model (pre-LN transformer encoder, elastic by prefix slicing):
    with a convolutional stem of n = 2 or 3 convolutions (the table has
    stem.conv1.* .. stem.conv<n>.*), each token is the pixel window its stem
    output depends on: (p+3) x (p+3) for two convolutions, (p+5) x (p+5) for
    three (side p + 2^(n-1) + 1, from n pixels before its patch, 0 outside
    the image), and
    tokens = gelu(conv_n_stride2(... gelu(conv2_stride2(gelu(conv1(window))))))
    flattened position-major, (p/2^(n-1))^2 positions of C_n channels
    (all 3x3 convolutions without padding here: the window holds it)
    x = tokens W_patch[:e]^T + b_patch[:e] + pos[:, :e]
    per kept block:  x = x + proj(attn(qkv(LN1(x))));  x = x + fc2(gelu(fc1(LN2(x))))
    logits = head(mean_t LN(x))
A sub-network with embed e uses the first e channels of every tensor; a
kept block with h heads uses the first h*3*D rows of the qkv weight (laid
out head by head as [q(D) k(D) v(D)]) and the first h*D columns of the
output projection; an MLP width f uses the first f rows of fc1 and the
first f columns of fc2.  Kept block j of stage s is supernet block
offset(s) + j, offset(s) = sum of the max depths of the earlier stages.
"""
import math
import re

import torch
import torch.nn.functional as F

LN_EPS = 1e-5

_SUBNET_RE = re.compile(r"^e(\d+)-d([\d.]+)-h([\d.]+)-f([\d.]+)$")


def parse_subnet(text):
    """Parses 'e<embed>-d<d0>.<d1>...-h<...>-f<...>' into a dict with keys
    embed, depth, heads, mlp (lists of ints)."""
    m = _SUBNET_RE.match(text.strip())
    if not m:
        raise ValueError(f"sub-network '{text}': expected e<embed>-d<depths>-h<heads>-f<mlp>")
    ints = lambda s: [int(v) for v in s.split(".")]
    net = {"embed": int(m.group(1)), "depth": ints(m.group(2)),
           "heads": ints(m.group(3)), "mlp": ints(m.group(4))}
    if len(net["heads"]) != sum(net["depth"]) or len(net["mlp"]) != sum(net["depth"]):
        raise ValueError(f"sub-network '{text}': {sum(net['depth'])} kept blocks but "
                         f"{len(net['heads'])} heads and {len(net['mlp'])} mlp values")
    return net


def kept_blocks(net, max_depth):
    """Supernet block indices of the sub-network's kept blocks, in order."""
    if len(max_depth) != len(net["depth"]):
        raise ValueError(f"{len(net['depth'])} stage depths for {len(max_depth)} stages")
    out, off = [], 0
    for d, dmax in zip(net["depth"], max_depth):
        if not 1 <= d <= dmax:
            raise ValueError(f"stage depth {d} outside 1..{dmax}")
        out += [off + j for j in range(d)]
        off += dmax
    return out


def read_param_table(path):
    """Reads the text table 'name offset ndim shape0 [shape1]' per line into
    a list of (name, offset, shape)."""
    table = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name, off, ndim = parts[0], int(parts[1]), int(parts[2])
            table.append((name, off, tuple(int(v) for v in parts[3:3 + ndim])))
    return table


def bind_params(buf, table):
    """Name -> view of the flat buffer buf (1-D tensor) at the table's shapes."""
    views = {}
    for name, off, shape in table:
        count = math.prod(shape)
        views[name] = buf[off:off + count].view(shape)
    return views


def _layernorm(x, g, b, e):
    return F.layer_norm(x, (e,), g[:e], b[:e], eps=LN_EPS)


def stem_forward(p, windows):
    """The stem token by token: windows (B, T, W*W) -> features (B, T, G*G*Cn),
    with n = 3 convolutions if p has stem.conv3.weight, else 2."""
    B, T, WW = windows.shape
    W = math.isqrt(WW)
    n = 3 if "stem.conv3.weight" in p else 2
    c1 = p["stem.conv1.weight"].shape[0]
    x = windows.reshape(B * T, 1, W, W)
    x = F.gelu(F.conv2d(x, p["stem.conv1.weight"].view(c1, 1, 3, 3), p["stem.conv1.bias"]),
               approximate="tanh")
    c_in = c1
    for k in range(2, n + 1):
        c_out = p[f"stem.conv{k}.bias"].shape[0]
        # stored (out, 3x3, in)
        w = p[f"stem.conv{k}.weight"].view(c_out, 3, 3, c_in).permute(0, 3, 1, 2)
        x = F.gelu(F.conv2d(x, w, p[f"stem.conv{k}.bias"], stride=2), approximate="tanh")
        c_in = c_out
    return x.permute(0, 2, 3, 1).reshape(B, T, -1)


def subnet_forward(p, net, max_depth, head_dim, tokens):
    """Logits (B, C) of sub-network net (a parse_subnet dict) over tokens
    (B, T, P), with p the name -> tensor map at full supernet shapes."""
    e, D = net["embed"], head_dim
    B, T, _ = tokens.shape
    if "stem.conv1.weight" in p:
        tokens = stem_forward(p, tokens)
    x = tokens @ p["patch_embed.weight"][:e].T + p["patch_embed.bias"][:e]
    x = x + p["pos_embed"][:T, :e]
    for i, l in enumerate(kept_blocks(net, max_depth)):
        h, f = net["heads"][i], net["mlp"][i]
        hd = h * D
        pre = f"blocks.{l}."
        y = _layernorm(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"], e)
        qkv = y @ p[pre + "attn.qkv.weight"][:3 * hd, :e].T + p[pre + "attn.qkv.bias"][:3 * hd]
        qkv = qkv.view(B, T, h, 3, D).permute(3, 0, 2, 1, 4)  # (3, B, h, T, D)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1)
        ao = (att @ v).transpose(1, 2).reshape(B, T, hd)
        x = x + ao @ p[pre + "attn.proj.weight"][:e, :hd].T + p[pre + "attn.proj.bias"][:e]
        y = _layernorm(x, p[pre + "ln2.weight"], p[pre + "ln2.bias"], e)
        y = y @ p[pre + "mlp.fc1.weight"][:f, :e].T + p[pre + "mlp.fc1.bias"][:f]
        y = F.gelu(y, approximate="tanh")
        x = x + y @ p[pre + "mlp.fc2.weight"][:e, :f].T + p[pre + "mlp.fc2.bias"][:e]
    x = _layernorm(x, p["norm.weight"], p["norm.bias"], e)
    pooled = x.mean(dim=1)
    return pooled @ p["head.weight"][:, :e].T + p["head.bias"]


def xent_hard(logits, labels, eps):
    """Mean cross-entropy against (1 - eps) one-hot + eps / C (sn_xent_hard)."""
    C = logits.shape[1]
    target = torch.full_like(logits, eps / C)
    target[torch.arange(len(labels)), labels] += 1.0 - eps
    return xent_soft(logits, target)


def xent_soft(logits, q):
    """Mean over rows of -sum q log softmax(logits) (sn_xent_soft)."""
    return -(q * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
