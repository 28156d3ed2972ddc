#!/usr/bin/python3
"""Summary of scripts/bench-parallel.sh's raw outputs (one directory).

Prints every figure as a ratio: D2 against one rank, the measured pipeline
bubble against (P-1)/(M+P-1) and against a simulation of the 1F1B schedule,
ring attention's hidden communication, bytes per rank per step against the
analytic formulas, the step-time model of docs/SCALING.md against the
measured D2, P2 and S2 steps, and the model's predictions for clusters.
Standard library only:  bench_parallel.py OUTDIR
"""
import math
import os
import re
import statistics
import sys

BATCH = 128             # images per step (the script's image runs)
LM_B, LM_T = 4, 1024    # sequences, bytes per sequence (the LM runs)
ALPHA_SHM = 0.25e-6     # s per message, MPI shared memory (Open MPI shared-memory latency measured on this machine with an 8-byte ping-pong; not measured by this script)


# ---- parsing -----------------------------------------------------------------

def parse_train(path):
    """One `supernest train` output: per-step rates, the trained line, the table."""
    text = open(path).read()
    r = {"rates": [], "rows": [], "path": path}
    for m in re.finditer(r"^step (\d+)/\d+ .*\| (\d+) (img|tok)/s", text, re.M):
        r["rates"].append((int(m.group(1)), float(m.group(2))))
    m = re.search(r"trained (\d+) steps in ([\d.]+) s \(([\d.]+) (images|tokens)/s\)", text)
    if not m:
        sys.exit(f"bench_parallel: no 'trained' line in {path}:\n{text[-800:]}")
    r["steps"], r["secs"], r["rate"] = int(m.group(1)), float(m.group(2)), float(m.group(3))
    m = re.search(r"largest e(\d+)-d([\d.]+)-h([\d.]+)-f([\d.]+)", text)
    r["E"] = int(m.group(1))
    r["heads"] = [int(x) for x in m.group(3).split(".")]
    r["mlp"] = [int(x) for x in m.group(4).split(".")]
    m = re.search(r"(\d+) tokens of (\d+) values", text)
    r["tokens"], r["patch_values"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)\s+"
                         r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", text, re.M):
        v = m.groups()
        r["rows"].append({"rank": int(v[0]), "d": int(v[1]), "p": int(v[2]), "s": int(v[3]),
                          "step_s": float(v[4]), "bubble": float(v[5]) / 100,
                          "p2p_MB": float(v[6]), "ring_MB": float(v[7]),
                          "ring_wait": float(v[8]), "allreduce_MB": float(v[9]),
                          "sum_wait": float(v[10])})
    return r


def step_time(r, items):
    """Median seconds per step, without the first (warm-up) step."""
    rates = [x for s, x in r["rates"] if s > 1] or [x for _, x in r["rates"]]
    return items / statistics.median(rates)


def parse_ring(path):
    text = open(path).read()
    out = {}
    for m in re.finditer(r"^(plain|token) ring ([\d.]+) s\s+local ([\d.]+) s\s+ring/local ([\d.]+)\s+"
                         r"xfer alone ([\d.]+) s\s+hidden (\d+)%\s+\(rank 0 per call: blocked in waits "
                         r"([\d.]+) s, compute ([\d.]+) s\)\s*\n\s*bytes/rank/fwd\+bwd (\d+) "
                         r"\(formula (\d+)\), ([\d.]+) messages", text, re.M):
        v = m.groups()
        out[v[0]] = {"ring": float(v[1]), "local": float(v[2]), "ratio": float(v[3]),
                     "xfer": float(v[4]), "hidden": float(v[5]) / 100, "wait": float(v[6]),
                     "compute": float(v[7]), "bytes": int(v[8]), "formula": int(v[9]),
                     "msgs": float(v[10])}
    m = re.search(r"one-rank attention, (\d+) threads: ([\d.]+) s", text)
    out["one"] = float(m.group(2)) if m else None
    out["head"] = text.splitlines()[1] if len(text.splitlines()) > 1 else ""
    return out


# ---- formulas ----------------------------------------------------------------

HEAD_DIM = 64


def block_params(E, h, F):
    hd = h * HEAD_DIM
    return 2 * E + 3 * hd * E + 3 * hd + E * hd + E + 2 * E + F * E + F + E * F + E


def stage_blocks(n_blocks, P, p):
    """src/layout.h: consecutive runs, earlier stages take the extra block."""
    base, extra = divmod(n_blocks, P)
    lo = p * base + min(p, extra)
    return lo, lo + base + (1 if p < extra else 0)


def stage_param_floats(r, P, p, embed_in, T, C):
    """Floats of the supernet tensors stage p owns (= its all-reduce payload)."""
    E, heads, mlp = r["E"], r["heads"], r["mlp"]
    lo, hi = stage_blocks(len(heads), P, p)
    n = sum(block_params(E, heads[i], mlp[i]) for i in range(lo, hi))
    if p == 0:
        n += E * embed_in + E + T * E
    if p == P - 1:
        n += 2 * E + C * E + C
    return n


def zigzag(T, S, r):
    tl, c = T // S, T // S // 2
    if S == 1:
        return list(range(tl))
    return [r * c + i for i in range(c)] + [(2 * S - 1 - r) * c + i for i in range(c)]


def visible_hops(T, S, R):
    """v of mpi/ring.h: hops whose (query block, own K/V) the causal mask leaves partly visible."""
    mine = zigzag(T, S, R)
    return sum(1 for j in range(1, S) if max(zigzag(T, S, (R - j) % S)) >= min(mine))


def ring_call(variant, b, tl, h, S, v):
    """Floats and messages one rank sends for one attention layer, forward + backward."""
    n, m = b * tl * h * HEAD_DIM, b * h * tl
    if variant == "plain":
        return 2 * n * (S - 1) + 4 * n * (S - 1), 3 * (S - 1)
    return n * (S - 1) + v * (n + m) + (2 * n + 2 * m) * (S - 1) + v * n, 2 * (S - 1) + 2 * v


# ---- the 1F1B schedule, simulated ---------------------------------------------

def sim_1f1b(P, M, tf, tb):
    """Blocked-on-receive fraction per stage and the step time of the schedule in
    mpi/pipeline.h (stage p: min(P-p-1, M) forwards, then F/B alternating, then
    the remaining backwards), with per-micro-batch times tf, tb per stage and free
    transfers.  The last stages' idle drain is spent in the step's final
    all-reduce, which the table does not count as bubble."""
    ops = []
    for p in range(P):
        w = min(P - p - 1, M)
        seq = [("F", j) for j in range(w)]
        for k in range(M - w):
            seq += [("F", w + k), ("B", k)]
        seq += [("B", j) for j in range(M - w, M)]
        ops.append(seq)
    done = {}
    free, blocked, idx = [0.0] * P, [0.0] * P, [0] * P
    while any(idx[p] < len(ops[p]) for p in range(P)):
        progressed = False
        for p in range(P):
            while idx[p] < len(ops[p]):
                kind, j = ops[p][idx[p]]
                dep = (p - 1, "F", j) if kind == "F" and p > 0 else \
                      (p + 1, "B", j) if kind == "B" and p < P - 1 else None
                if dep is not None and dep not in done:
                    break
                ready = done[dep] if dep is not None else 0.0
                blocked[p] += max(0.0, ready - free[p])
                free[p] = max(free[p], ready) + (tf if kind == "F" else tb)
                done[(p, kind, j)] = free[p]
                idx[p] += 1
                progressed = True
        assert progressed, "1F1B simulation deadlocked"
    step = max(free)
    return [b / step for b in blocked], step


# ---- the step-time model (docs/SCALING.md) -------------------------------------

def allreduce_time(G, R, beta, alpha, buckets):
    """Ring all-reduce of G bytes over R ranks: 2(R-1)/R G bytes per rank."""
    if R <= 1:
        return 0.0
    return 2 * (R - 1) / R * G / beta + 2 * (R - 1) * alpha * buckets


def model_step(t1, D, P, S, M, beta, alpha, p2p_bytes, p2p_msgs, ring_bytes, ring_msgs,
               attn_frac, G, buckets, overlap):
    """Predicted seconds per step (see docs/SCALING.md for each term)."""
    tc = t1 / (D * P * S)
    compute = tc * (M + P - 1) / M
    t_p2p = p2p_bytes / beta + p2p_msgs * alpha
    # ring: each transfer hides behind the attention compute of the block in
    # hand; what is left over is exposed
    t_ring = max(0.0, ring_bytes / beta + ring_msgs * alpha - attn_frac * tc) if S > 1 else 0.0
    t_ar = allreduce_time(G, D * S, beta, alpha, buckets)
    last = allreduce_time(min(G, 1 << 20), D * S, beta, alpha, 1)
    # bucketed all-reduce: overlapped with the backward (2/3 of the compute)
    t_ar_exposed = max(t_ar - overlap * (2 / 3) * tc, last) if D * S > 1 else 0.0
    return compute + t_p2p + t_ring + t_ar_exposed, dict(compute=compute, p2p=t_p2p,
                                                         ring=t_ring, allreduce=t_ar_exposed)


def attn_flop_frac(E, heads, mlp, T, causal):
    """Share of a step's FLOPs in the attention scores.  Per token and layer:
    linear layers 6 x their weights (forward + backward); QK^T and PV forward
    2 T h d with the causal mask (4 full), backward with recomputation
    5 T h d (10 full)."""
    lin = sum(6 * (4 * h * HEAD_DIM * E + 2 * E * f) for h, f in zip(heads, mlp))
    att = sum((7 if causal else 14) * T * h * HEAD_DIM for h in heads)
    return att / (lin + att)


# ---- report --------------------------------------------------------------------

def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_parallel.py OUTDIR")
    d = sys.argv[1]
    R = lambda name: parse_train(os.path.join(d, name + ".txt"))
    pr = lambda *a: print(*a)

    # a. throughput
    a1, a2, a11 = R("a_1r2t"), R("a_d2"), R("a_1r1t")
    pr("== a. data parallel, default space (sandwich rule), batch 128, 15 steps ('trained' line)")
    pr(f"  1 rank x 2 threads {a1['rate']:7.1f} images/s")
    pr(f"  1 rank x 1 thread  {a11['rate']:7.1f} images/s   2 threads / 1 thread = {a1['rate'] / a11['rate']:.2f}x")
    pr(f"  D2 x 1 thread      {a2['rate']:7.1f} images/s   D2 / 1 rank x 2 threads = "
       f"{a2['rate'] / a1['rate']:.2f}x (target >= 1.8x); D2 / 1 rank x 1 thread = "
       f"{a2['rate'] / a11['rate']:.2f}x")
    sa = [step_time(x, BATCH) for x in (a1, a11, a2)]
    pr(f"  without the first step (median): 1r2t {sa[0]:.3f} s, 1r1t {sa[1]:.3f} s, D2 {sa[2]:.3f} s"
       f" -> D2 / 1r2t {sa[0] / sa[2]:.2f}x, D2 / 1r1t {sa[1] / sa[2]:.2f}x")

    t1_1, t1_2 = R("t1_1t"), R("t1_2t")
    t1 = step_time(t1_1, BATCH)
    t1_2s = step_time(t1_2, BATCH)
    pr(f"  largest sub-network alone: t1 = {t1:.3f} s/step on 1 thread, {t1_2s:.3f} s on 2 threads "
       f"({t1 / t1_2s:.2f}x)")

    # b. bubble
    pr("\n== b. pipeline bubble, --fixed-subnet max, blocked on neighbours / step time")
    pr("  simulated: the 1F1B schedule with tb = 2 tf, equal stages, free transfers")
    pr(f"  {'run':6} {'ideal':>6} {'sim/stage':>18} {'measured/stage':>24} {'mean meas':>9} "
       f"{'mean/ideal':>10} {'step_s':>7} {'1-t1/(P*step)':>13}")
    bubble = {}
    for P in (2, 3):
        for M in (1, 2, 4, 8):
            r = R(f"p{P}_m{M}")
            ideal = (P - 1) / (M + P - 1)
            sim, _ = sim_1f1b(P, M, 1.0, 2.0)
            meas = [row["bubble"] for row in sorted(r["rows"], key=lambda x: x["p"])]
            mean = sum(meas) / len(meas)
            st = step_time(r, BATCH)
            eff = 1 - t1 / (P * st)
            bubble[(P, M)] = dict(ideal=ideal, meas=meas, mean=mean, step=st, eff=eff, sim=sim)
            pr(f"  P{P} M{M:<2} {ideal:6.1%} {' '.join(f'{x:5.1%}' for x in sim):>18} "
               f"{' '.join(f'{x:5.1%}' for x in meas):>24} {mean:9.1%} {mean / ideal:10.2f} "
               f"{st:7.3f} {eff:13.1%}{'  (3 ranks on 2 cores)' if P == 3 else ''}")

    # c. ring
    rb, rw = parse_ring(os.path.join(d, "ring_bench.txt")), parse_ring(os.path.join(d, "ring_bw.txt"))
    pr(f"\n== c. ring attention: build/tests/bench_ring under mpirun -np 2\n  {rb['head']}")
    for v in ("plain", "token"):
        x = rb[v]
        over = x["ring"] - x["local"]
        pr(f"  {v}: ring {x['ring']:.4f} s, local (same kernels, no communication) {x['local']:.4f} s, "
           f"ring/local {x['ratio']:.3f}; xfer alone {x['xfer']:.4f} s = {x['xfer'] / x['local']:.1%} of compute")
        pr(f"      hidden (1 - blocked wait / xfer alone) {x['hidden']:.0%}: rank 0 blocked in waits "
           f"{x['wait'] * 1e3:.2f} ms/call; ring-local = {over * 1e3:.2f} ms (run-to-run noise "
           f"is of the same size)")
    if rb.get("one"):
        pr(f"  one-rank attention (2 threads, full T x T) {rb['one']:.4f} s: ring plain is "
           f"{rb['one'] / rb['plain']['ring']:.2f}x faster")
    betas = [rw[v]["bytes"] / rw[v]["xfer"] for v in ("plain", "token") if rw[v]["xfer"] > 0]
    beta = statistics.mean(betas)
    pr(f"  shared-memory bandwidth from bench_ring's 'xfer alone' at T 4096 "
       f"({', '.join(f'{b / 1e9:.1f}' for b in betas)} GB/s): beta = {beta / 1e9:.1f} GB/s; "
       f"alpha = {ALPHA_SHM * 1e6:.2f} us (8-byte ping-pong on this machine)")
    pr(f"    (T 4096: plain ring/local {rw['plain']['ratio']:.3f}, token {rw['token']['ratio']:.3f})")

    l2, l1 = R("lm_1r2t"), R("lm_1r1t")
    ls = {v: R(f"lm_s2_{v}") for v in ("plain", "token")}
    tok = LM_B * LM_T
    tl2, tl1 = step_time(l2, tok), step_time(l1, tok)
    pr(f"  end to end, LM T {LM_T}, batch {LM_B}, --fixed-subnet max: 1 rank x 2 threads "
       f"{tl2:.3f} s/step, x 1 thread {tl1:.3f} s")
    for v, r in ls.items():
        st = step_time(r, tok)
        rows = r["rows"]
        rwait = max(x["ring_wait"] for x in rows)
        pr(f"    S2 {v:5}: {st:.3f} s/step = {tl2 / st:.2f}x 1 rank x 2 threads, {tl1 / st:.2f}x 1 thread; "
           f"ring_wait {rwait * 1e3:.1f} ms/step vs transfer {rows[0]['ring_MB'] * 1e6 / beta * 1e3:.1f} ms "
           f"at beta -> 1 - wait/transfer {max(0.0, 1 - rwait / (rows[0]['ring_MB'] * 1e6 / beta)):.0%} "
           f"(waits include imbalance between the ranks)")

    # d. bytes
    pr("\n== d. bytes sent per rank per step: measured (table) / formula")
    C_IMG, C_LM = 10, 256
    rows_out = []
    for M in (1, 2, 4, 8):
        r = R(f"p2_m{M}")
        mb = BATCH // M
        per_dir = M * mb * r["tokens"] * r["E"] * 4
        for row in r["rows"]:
            rows_out.append((f"P2 M{M} p2p, stage {row['p']}", row["p2p_MB"] * 1e6, per_dir))
    for M in (4,):
        r = R(f"p3_m{M}")
        per_dir = M * (BATCH // M) * r["tokens"] * r["E"] * 4
        for row in r["rows"]:
            k = 2 if 0 < row["p"] < 2 else 1
            rows_out.append((f"P3 M{M} p2p, stage {row['p']}", row["p2p_MB"] * 1e6, k * per_dir))
    for v, r in ls.items():
        for row in r["rows"]:
            vv = visible_hops(LM_T, 2, row["s"])
            fl = sum(ring_call(v, LM_B, LM_T // 2, h, 2, vv)[0] for h in r["heads"]) * 4
            rows_out.append((f"S2 {v} ring, rank {row['s']}", row["ring_MB"] * 1e6, fl))
        G = stage_param_floats(r, 1, 0, 256, LM_T, C_LM) * 4
        rows_out.append((f"S2 {v} all-reduce payload", r["rows"][0]["allreduce_MB"] * 1e6, G))
    dm = R("d2_max")
    G_img = stage_param_floats(dm, 1, 0, dm["patch_values"], dm["tokens"], C_IMG) * 4
    rows_out.append(("D2 all-reduce payload (fixed max)", dm["rows"][0]["allreduce_MB"] * 1e6, G_img))
    rows_out.append(("D2 all-reduce payload (sandwich)", a2["rows"][0]["allreduce_MB"] * 1e6
                     if a2["rows"] else float("nan"), G_img))
    for name, meas, form in rows_out:
        pr(f"  {name:36} measured {meas / 1e6:9.3f} MB  formula {form / 1e6:9.3f} MB  ratio {meas / form:.4f}")
    pr("  all-reduce: the table counts the payload; Open MPI's algorithms send about 2(R-1)/R of it "
       "per rank (R=2: 1x)")
    pr(f"  ring bytes per fwd+bwd (bench_ring, T 2048 h 4): plain {rb['plain']['bytes'] / rb['plain']['formula']:.4f}, "
       f"token {rb['token']['bytes'] / rb['token']['formula']:.4f} of the formula")

    # model check on this machine
    pr(f"\n== model (docs/SCALING.md) against this machine: beta {beta / 1e9:.1f} GB/s, "
       f"alpha {ALPHA_SHM * 1e6:.2f} us, t1 measured on 1 rank x 1 thread")
    checks = []
    sd = step_time(dm, BATCH)
    pd, _ = model_step(t1, 2, 1, 1, 1, beta, ALPHA_SHM, 0, 0, 0, 0, 0, G_img, 11, 1.0)
    pd0, _ = model_step(t1, 2, 1, 1, 1, beta, ALPHA_SHM, 0, 0, 0, 0, 0, G_img, 11, 0.0)
    checks.append(("D2 image (fixed max)", t1, pd, pd0, sd))
    for M in (1, 2, 4, 8):
        r = R(f"p2_m{M}")
        pb = r["tokens"] * r["E"] * 4 * BATCH
        p, _ = model_step(t1, 1, 2, 1, M, beta, ALPHA_SHM, pb, M, 0, 0, 0, 0, 0, 1.0)
        checks.append((f"P2 M{M} image", t1, p, p, step_time(r, BATCH)))
    af = attn_flop_frac(l1["E"], l1["heads"], l1["mlp"], LM_T, True)
    G_lm = stage_param_floats(l1, 1, 0, 256, LM_T, C_LM) * 4
    for v, r in ls.items():
        rbytes = r["rows"][0]["ring_MB"] * 1e6
        msgs = sum(ring_call(v, LM_B, LM_T // 2, h, 2, 1)[1] for h in r["heads"])
        p, parts = model_step(tl1, 1, 1, 2, 1, beta, ALPHA_SHM, 0, 0, rbytes, msgs, af, G_lm, 12, 1.0)
        p0, _ = model_step(tl1, 1, 1, 2, 1, beta, ALPHA_SHM, 0, 0, rbytes, msgs, af, G_lm, 12, 0.0)
        checks.append((f"S2 {v} LM", tl1, p, p0, step_time(r, tok)))
    pr(f"  {'run':22} {'t1':>7} {'predicted':>10} {'(no overlap)':>12} {'measured':>9} {'meas/pred':>9}")
    for name, base, p, p0, m in checks:
        pr(f"  {name:22} {base:7.3f} {p:10.3f} {p0:12.3f} {m:9.3f} {m / p:9.2f}")
    pr(f"  (attention score FLOPs share used for the LM ring overlap: {af:.0%})")

    # clusters
    pr("\n== model predictions for clusters of N nodes like this one (t1 on 1 rank x 2 threads)")
    links = [("10 GB/s, 2 us", 10e9, 2e-6), ("IB 100 Gb/s (12.5 GB/s, 1.5 us)", 12.5e9, 1.5e-6),
             ("10 GbE (1.25 GB/s, 20 us)", 1.25e9, 20e-6)]
    pr(f"  image: t1 = {t1_2s:.3f} s/step (batch 128); LM T 1024 batch 4: t1 = {tl2:.3f} s/step")
    cfgs = [("image D4", "img", 4, 1, 1, 1), ("image D16", "img", 16, 1, 1, 1),
            ("image P4 M8", "img", 1, 4, 1, 8), ("image D4xP4 M8", "img", 4, 4, 1, 8),
            ("LM S4 plain", "lm", 1, 1, 4, 1), ("LM S16 plain", "lm", 1, 1, 16, 1),
            ("LM D4xS4 plain", "lm", 4, 1, 4, 1)]
    pr(f"  {'config':16} " + " ".join(f"{n:>32}" for n, _, _ in links))
    for name, task, D, P, S, M in cfgs:
        cells = []
        for _, bw, al in links:
            if task == "img":
                base, G, stage_G = t1_2s, G_img, G_img / P
                p2p = (2 if P > 2 else 1) * M * (BATCH // D // M) * dm["tokens"] * dm["E"] * 4 if P > 1 else 0
                msgs = (2 if P > 2 else 1) * M if P > 1 else 0
                p, parts = model_step(base, D, P, S, M, bw, al, p2p, msgs, 0, 0, 0, stage_G,
                                      max(1, int(stage_G // (1 << 20))), 1.0)
                p0, _ = model_step(base, D, P, S, M, bw, al, p2p, msgs, 0, 0, 0, stage_G,
                                   max(1, int(stage_G // (1 << 20))), 0.0)
            else:
                b = LM_B // D
                rbytes = sum(ring_call("plain", b, LM_T // S, h, S, S - 1)[0] for h in l1["heads"]) * 4
                msgs = sum(ring_call("plain", b, LM_T // S, h, S, S - 1)[1] for h in l1["heads"])
                p, parts = model_step(tl2, D, P, S, M, bw, al, 0, 0, rbytes, msgs, af, G_lm, 12, 1.0)
                p0, _ = model_step(tl2, D, P, S, M, bw, al, 0, 0, rbytes, msgs, af, G_lm, 12, 0.0)
                base = tl2
            N = D * P * S
            cells.append(f"{p * 1e3:7.1f}-{p0 * 1e3:.1f} ms {base / p:5.1f}x/{N}")
        pr(f"  {name:16} " + " ".join(f"{c:>32}" for c in cells))
    pr("  (each cell: step time with full - no all-reduce overlap, speed-up over one node / nodes)")


if __name__ == "__main__":
    main()
