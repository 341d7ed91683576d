"""Speed of the RF8 numeric model against peers measured in the same run.

    .venv/bin/python benchmarks/bench_format.py [--size 16777216] [--repeat 5] [--markdown]

Targets (issue "RF8 number format, Numba bit-exact golden model"):

* encode (both modes) of 16M float32: >= 1.0x torch float32 -> float8_e4m3fn, >= 3x ml_dtypes;
* decode: >= 1.0x torch float8_e4m3fn -> float32;
* golden.matmul wrap, M=N=K=1024: time <= 1.5x torch float32 ``a @ b``;
* golden.matmul saturate: >= 1 G MAC/s.

Each timing is the best of ``--repeat`` runs after one warm-up (JIT compile excluded).  The machine
is shared and noisy, so only ratios within one run are meaningful.
"""

from __future__ import annotations

import argparse
import platform
import time

import ml_dtypes
import numpy as np
import torch

from rf8hw.format import codec, golden


def best(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1 << 24)
    ap.add_argument("--gemm", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table at the end")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    n = args.size
    w = (rng.standard_normal(n) * 0.05).astype(np.float32)
    X = codec.shared_exponent(w)
    wt = torch.from_numpy(w)
    rows = []

    def row(name, t, peer_name, t_peer, target, higher_is_better=True):
        ratio = t_peer / t if higher_is_better else t / t_peer
        ok = ratio >= target if higher_is_better else ratio <= target
        rows.append((name, t, peer_name, t_peer, ratio, target, higher_is_better, ok))
        rel = ">=" if higher_is_better else "<="
        print(f"{name:32s} {t * 1e3:9.2f} ms | {peer_name:32s} {t_peer * 1e3:9.2f} ms | "
              f"ratio {ratio:5.2f} (target {rel} {target}) {'OK' if ok else 'MISSED'}", flush=True)

    t_torch_enc = best(lambda: wt.to(torch.float8_e4m3fn), args.repeat)
    t_mld_enc = best(lambda: w.astype(ml_dtypes.float8_e4m3fn), args.repeat)
    for mode in ("nearest", "paper"):
        t = best(lambda mode=mode: codec.encode(w, X, mode), args.repeat)
        row(f"codec.encode {mode} ({n / 1e6:.0f}M)", t, "torch f32->float8_e4m3fn", t_torch_enc, 1.0)
        row(f"codec.encode {mode} ({n / 1e6:.0f}M)", t, "ml_dtypes f32->float8_e4m3fn", t_mld_enc, 3.0)

    codes = codec.encode(w, X)
    f8 = wt.to(torch.float8_e4m3fn)
    t_dec = best(lambda: codec.decode(codes, X), args.repeat)
    t_torch_dec = best(lambda: f8.to(torch.float32), args.repeat)
    row(f"codec.decode ({n / 1e6:.0f}M)", t_dec, "torch float8_e4m3fn->f32", t_torch_dec, 1.0)

    g = args.gemm
    a = rng.integers(-128, 128, (g, g)).astype(np.int8)
    c = rng.integers(0, 256, (g, g)).astype(np.uint8)
    x, y = torch.randn(g, g), torch.randn(g, g)
    t_torch_mm = best(lambda: x @ y, args.repeat)
    t_wrap = best(lambda: golden.matmul(a, c, 40, "wrap"), args.repeat)
    row(f"golden.matmul wrap {g}^3", t_wrap, f"torch f32 a@b {g}^3", t_torch_mm, 1.5,
        higher_is_better=False)
    t_sat = best(lambda: golden.matmul(a, c, 40, "saturate"), max(2, args.repeat // 2))
    gmacs = g ** 3 / t_sat / 1e9
    ok = gmacs >= 1.0
    rows.append((f"golden.matmul saturate {g}^3", t_sat, "(absolute)", float("nan"), gmacs, 1.0,
                 True, ok))
    print(f"{'golden.matmul saturate':32s} {t_sat * 1e3:9.2f} ms | {gmacs:.2f} G MAC/s "
          f"(target >= 1) {'OK' if ok else 'MISSED'}")

    if args.markdown:
        print(f"\nMachine: {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, numpy {np.__version__}, torch "
              f"{torch.__version__}, ml_dtypes {ml_dtypes.__version__}\n")
        print("| ours | time | peer | peer time | ratio | target | met |")
        print("|---|--:|---|--:|--:|---|:-:|")
        for name, t, peer, tp, ratio, target, hib, ok in rows:
            tgt = (">= " if hib else "<= ") + str(target) + (" GMAC/s" if peer == "(absolute)" else "x")
            tp_s = "" if peer == "(absolute)" else f"{tp * 1e3:.1f} ms"
            print(f"| {name} | {t * 1e3:.1f} ms | {peer} | {tp_s} | {ratio:.2f} | {tgt} | "
                  f"{'yes' if ok else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
