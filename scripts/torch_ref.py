"""torch_ref.py DIR: the PyTorch reference for tests/test_model.c.

Reads what the C test wrote into DIR:
    space.txt    'key v...' lines: head_dim, max_depth (per stage), batch,
                 tokens, token_dim, classes, n_params
    table.txt    the parameter table: 'name offset ndim shape0 [shape1]'
    params.f32   the parameter buffer (n_params float32, little-endian)
    tokens.f32   (batch, tokens, token_dim) float32
    labels.i32   (batch) int32
    cases.txt    one case a line: 'hard <eps> <subnet>' or
                 'soft <teacher case> <subnet>' (soft targets: the softmax
                 of the teacher case's logits, taken as constants)
and writes, for case k, case<k>.f64: the loss, the logits (batch, classes)
and the gradient of the loss w.r.t. the whole parameter buffer (n_params,
in the C layout: zeros outside the slices used and in the padding), all
float64 little-endian.

Everything is computed in float64: the reference must be far more exact
than the float32 C model it judges, so that the tolerance of the
comparison measures the C model's rounding alone.
"""
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as exc:  # a missing dependency is a failure, not a skip
    sys.exit(f"torch_ref.py: {exc}; install python3-torch and python3-numpy "
             "(Debian) for /usr/bin/python3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import supernet_torch as sn  # noqa: E402


def read_space(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                out[parts[0]] = [int(v) for v in parts[1:]]
    return out


def read_raw(path, dtype, count):
    a = np.fromfile(path, dtype=dtype)
    if a.size != count:
        raise SystemExit(f"torch_ref.py: {path}: {a.size} values, expected {count}")
    return a


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_ref.py DIR")
    d = sys.argv[1]
    sp = read_space(os.path.join(d, "space.txt"))
    B, T, P = sp["batch"][0], sp["tokens"][0], sp["token_dim"][0]
    n_params = sp["n_params"][0]
    table = sn.read_param_table(os.path.join(d, "table.txt"))
    params = read_raw(os.path.join(d, "params.f32"), "<f4", n_params)
    tokens = torch.from_numpy(read_raw(os.path.join(d, "tokens.f32"), "<f4", B * T * P)
                              .astype(np.float64)).view(B, T, P)
    labels = torch.from_numpy(read_raw(os.path.join(d, "labels.i32"), "<i4", B)
                              .astype(np.int64))

    logits_of = []
    with open(os.path.join(d, "cases.txt")) as f:
        cases = [line.split() for line in f if line.strip()]
    for k, (kind, arg, text) in enumerate(cases):
        buf = torch.tensor(params.astype(np.float64), requires_grad=True)
        p = sn.bind_params(buf, table)
        net = sn.parse_subnet(text)
        logits = sn.subnet_forward(p, net, sp["max_depth"], sp["head_dim"][0], tokens)
        if kind == "hard":
            loss = sn.xent_hard(logits, labels, float(arg))
        elif kind == "soft":
            q = torch.softmax(logits_of[int(arg)], dim=1)
            loss = sn.xent_soft(logits, q)
        else:
            sys.exit(f"torch_ref.py: case {k}: unknown kind '{kind}'")
        loss.backward()
        logits_of.append(logits.detach())
        out = np.concatenate([[loss.item()], logits.detach().numpy().ravel(),
                              buf.grad.numpy()]).astype("<f8")
        out.tofile(os.path.join(d, f"case{k}.f64"))


if __name__ == "__main__":
    main()
