"""BackSlash overhead as a fraction of a tinygpt training step, measured against plain steps in the same run.

    .venv/bin/python benchmarks/bench_backslash.py [--steps 40] [--markdown]

Target (issue 5): BackSlash adds <= 10 % to the time of a training step on tinygpt.

A training step is the recipe's: one batch (32 x 64 characters), forward, backward, AdamW step.
Three arms (three models with the same seed) alternate step by step, so machine noise hits them alike:

* ``plain``: the step alone;
* ``step form``: the step, then ``BackSlash.step()`` (nu re-estimated, decoupled update);
* ``loss form``: ``BackSlash.penalty()`` added to the loss before backward.

Times are process CPU seconds (``time.process_time``) with one torch thread by default: on a shared,
oversubscribed machine wall time swings 10x from step to step, CPU time of a single-threaded
process much less.  Overhead = arm / plain - 1 from each arm's fastest step (the least disturbed;
the median-based figure is printed too).  The step form's extra work is also timed alone
(best of 5 x 20 calls) and divided by the fastest plain step.  BackSlash touches the weight
matrices (the default) with lambda = 2000, estimating nu from all of their elements every step.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rf8hw.nn import backslash
from rf8hw.zoo import tinygpt


def make_arm(form: str | None, seed: int = 0):
    torch.manual_seed(seed)
    cfg = tinygpt.GPTConfig()
    model = tinygpt.build(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tinygpt.RECIPE["lr"], weight_decay=0.0)
    bs = backslash.BackSlash(model, lam=2000.0, form=form) if form else None
    gen = torch.Generator().manual_seed(seed)
    batch = [torch.randint(cfg.vocab_size, (tinygpt.RECIPE["batch_size"], cfg.block_size), generator=gen)
             for _ in range(2)]

    def step():
        _, loss = model(batch[0], batch[1])
        if form == "loss":
            loss = loss + bs.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if form == "step":
            bs.step()

    return step, model, bs


def time_steps(step, n, clock=time.process_time):
    t = clock()
    for _ in range(n):
        step()
    return (clock() - t) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per arm (alternating arms)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see above)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    arms = {"plain": make_arm(None), "step form": make_arm("step"), "loss form": make_arm("loss")}
    n_sel = arms["step form"][2].n
    n_all = sum(p.numel() for p in arms["plain"][1].parameters())
    for step, _, _ in arms.values():                 # warm-up
        time_steps(step, 3)
    times = {k: [] for k in arms}
    for _ in tqdm(range(args.steps), desc="alternating steps"):
        for name, (step, _, _) in arms.items():      # plain, step form, loss form, plain, ...
            times[name].append(time_steps(step, 1))
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}

    # the step form's extra work alone, on the same weights: best of 5 x 20 calls
    bs = arms["step form"][2]
    t_nu = min(time_steps(bs.estimate_nu, 20) for _ in range(5))
    t_bs = min(time_steps(bs.step, 20) for _ in range(5))

    print(f"tinygpt {n_all} parameters ({n_sel} in weight matrices), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"load average before timing {os.getloadavg()[0]:.1f}")
    rows = []
    for name in ("step form", "loss form"):
        over_best = best[name] / best["plain"] - 1
        over_med = med[name] / med["plain"] - 1
        rows.append((name, best[name], best["plain"], over_best, over_med))
        print(f"{name:10s} best {best[name] * 1e3:7.1f} ms CPU/step | "
              f"plain best {best['plain'] * 1e3:7.1f} ms CPU/step | overhead {100 * over_best:+6.1f} % "
              f"(median-based {100 * over_med:+6.1f} %) target <= 10 %: "
              f"{'OK' if over_best <= 0.10 else 'MISSED'}")
    direct = t_bs / best["plain"]
    print(f"step form's extra work alone: estimate_nu {t_nu * 1e3:.2f} ms, BackSlash.step (incl. nu) "
          f"{t_bs * 1e3:.2f} ms = {100 * direct:.1f} % of the best plain step")
    if args.markdown:
        print("\n| arm | best ms CPU/step | plain best ms CPU/step | overhead (best) | overhead (median) "
              "| target |\n|---|---:|---:|---:|---:|---|")
        for name, t, tp, ob, om in rows:
            print(f"| {name} | {t * 1e3:.1f} | {tp * 1e3:.1f} | {100 * ob:+.1f} % | {100 * om:+.1f} % | "
                  f"<= 10 % {'met' if ob <= 0.10 else 'missed'} |")
        print(f"| step form, extra work alone | {t_bs * 1e3:.2f} | {best['plain'] * 1e3:.1f} | "
              f"{100 * direct:+.1f} % | | |")


if __name__ == "__main__":
    main()
