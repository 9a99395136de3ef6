"""How many optimiser steps does a small training set need? Random-subset validation accuracy
against the minimum number of steps S, to choose the ``steps`` of the CPU protocols.

For each protocol (DIGITS, MNIST), each budget (1 and 10 images per class) and each S, three
seeds each draw a random class-balanced subset of the protocol's pool (``select("random",
..., generator=seed)``) and train one network on it (``protocol.variant(..., epochs=1,
steps=S)``: exactly S steps, since these sets fit in one batch), scored on the protocol's
**validation** split (never the test set). The knee rule: S is the smallest value whose mean
is within one seed-std of the best mean (the std of the best S's seeds); a protocol takes
the largest knee over its budgets. Results and the command: ``benchmarks/README_protocols.md``.

    OMP_NUM_THREADS=1 DISTILLKIT_DATA=/work/shared/data python benchmarks/steps_curve.py
"""

from __future__ import annotations

import argparse
import sys
import time


def curve(protocol, ipc, steps_grid, seeds):
    """{S: EvalResult} of random subsets at ``ipc`` images per class, on validation."""
    from distillkit.coresets import select
    from distillkit.evaluate import EvalResult

    x, y, *_ = protocol.data()
    out = {}
    for s in steps_grid:
        variant = protocol.variant(f"{protocol.name}-steps-{s}", "steps curve: exactly S steps", epochs=1, steps=s)
        accs = []
        for seed in seeds:
            idx = select("random", x, y, 10 * ipc, generator=seed).indices
            accs += variant.evaluate(x[idx], y[idx], seeds=(seed,), on="validation").accuracies
        out[s] = EvalResult(tuple(accs), tuple(seeds), {"steps": s})
        print(f"  {protocol.name} {ipc} ipc S={s}: {out[s]}", file=sys.stderr, flush=True)
    return out


def knee(results):
    """Smallest S whose mean is within one seed-std of the best mean, and the best S."""
    best = max(results, key=lambda s: results[s].mean)
    floor = results[best].mean - results[best].std
    return min(s for s in results if results[s].mean >= floor), best


def main(argv=None):
    from distillkit import protocols

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocols", nargs="+", default=["DIGITS", "MNIST"])
    parser.add_argument("--ipcs", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--steps", nargs="+", type=int, default=[25, 50, 100, 200, 300, 500, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-steps-at", nargs="*", default=[],
                        help="PROTOCOL:IPC:S, the largest S to run for that cell (to keep the CPU time down)")
    args = parser.parse_args(argv)
    caps = {}
    for item in args.max_steps_at:
        name, ipc, s = item.split(":")
        caps[name, int(ipc)] = int(s)

    columns, chosen = {}, {}
    for name in args.protocols:
        protocol = getattr(protocols, name)
        knees = []
        for ipc in args.ipcs:
            grid = [s for s in args.steps if s <= caps.get((name, ipc), max(args.steps))]
            start = time.process_time()
            res = curve(protocol, ipc, grid, args.seeds)
            k, best = knee(res)
            knees.append(k)
            columns[name, ipc] = (res, k, best, time.process_time() - start)
        chosen[name] = max(knees)

    keys = list(columns)
    print("Validation accuracy (%) of random subsets, mean ± sample std over seeds", args.seeds)
    print("| S | " + " | ".join(f"{n} {i} ipc" for n, i in keys) + " |")
    print("|---:|" + "---:|" * len(keys))
    for s in args.steps:
        cells = [str(columns[k][0][s]) if s in columns[k][0] else "-" for k in keys]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| knee | " + " | ".join(str(columns[k][1]) for k in keys) + " |")
    print("| best | " + " | ".join(str(columns[k][2]) for k in keys) + " |")
    print("| CPU s | " + " | ".join(f"{columns[k][3]:.0f}" for k in keys) + " |")
    print("\nRule: the knee is the smallest S whose mean is within one seed-std of the best mean;"
          " a protocol takes the largest knee over its budgets.")
    for name, s in chosen.items():
        print(f"chosen S for {name}: {s}")


if __name__ == "__main__":
    main()
