"""One GPU run that fits the minutes a device is lent (issue 15): every CUDA-only check of
distillkit, each part under a declared time budget, everything into one folder.

Parts, in the order they run (budgets in seconds of wall time, 525 s in all, under the
9 minutes of one H200 lease):

=================  ======  ==================================================================
part               budget  what it runs
=================  ======  ==================================================================
contract              45   the CUDA contract tests (CPU == CUDA selections; they skip without
                           a GPU): ``pytest -k cuda`` on test_coresets_contract / _boundary
coreset_speed         60   ``coreset_speed.py --device cuda`` (herding, k-center, facility
                           location against the device's measured read bandwidth)
distill_speed         60   ``distill_speed.py --device cuda``: DC and DM, batched library vs
                           per-class loop, ipc 10, ConvNet-3 width 128, 256 real per class
mtt_speed             40   ``distill_speed_mtt.py --device cuda`` (ipc 10, width 128)
peers                 60   ``peers.py --device cuda`` (distillkit on the GPU, peers on the CPU)
coreset_paper        120   DC paper's coreset rows (Random, Herding, K-Center, Forgetting) on
                           MNIST at 1 / 10 / 50 ipc, 1 set x 5 models (labelled in the table)
dm_paper             140   DM on MNIST at 1 ipc, 1 set x 5 models; the step count is the
                           paper's 20,000 if the DM time per iteration measured by
                           ``distill_speed`` says it fits the budget, else as many as fit
                           (then the row says REDUCED)
=================  ======  ==================================================================

Enforcement: a part starts only if its whole budget fits in what is left of ``--total``
(else it is skipped and the summary says so); a running part is killed at its budget (the
summary says "killed at budget"; what it printed so far is kept in its log).

Output (``--out DIR``): ``DIR/<part>.log`` (each part's stdout and stderr), ``DIR/summary.md``
(environment, one row per part: budget, wall time, status, command) and ``DIR/summary.json``.

``--smoke`` runs every part tiny on the CPU (MNIST slices, width 8, a few steps) in under a
minute; tests/test_gpu_check.py runs it so that the script cannot rot.

Usage::

    python benchmarks/gpu_check.py --out gpu_run            # on the GPU machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke # anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
DM_PAPER_STEPS = 20000


def _bench(name: str) -> str:
    return str(HERE / name)


def parts(smoke: bool) -> list[dict]:
    """The parts to run: name, budget (s), command (argv) for a GPU run or a CPU smoke run."""
    dev = "cpu" if smoke else "cuda"
    # the project's addopts load nbval for the chapters: not needed for these two test files
    pytest_cmd = [PY, "-m", "pytest", "-q", "-rs", "-o", "addopts=", "-p", "no:cacheprovider", "-p", "no:nbval",
                  "-k", "cuda",
                  str(ROOT / "tests/test_coresets_contract.py"), str(ROOT / "tests/test_coresets_boundary.py")]
    if smoke:
        speed = ["--sizes", "500", "--budget", "20", "--naive-budget", "5", "--fl-n", "300", "--fl-budget", "20",
                 "--fl-naive-steps", "5", "--no-apricot", "--threads", "1", "--bandwidth-mib", "8",
                 "--methods", "herding", "--in-process"]
        distill = ["--width", "8", "--batch-real", "4", "--ipc", "1", "--iters", "2", "--methods", "dm", "--pool", "600",
                   "--in-process"]
        mtt = ["--dataset", "digits", "--n", "100", "--ipc", "1", "--syn-steps", "2", "--width", "8", "--iters", "1",
               "--no-memory"]
        peers = ["--quick", "--pairs", "1", "--threads", "1", "--skip", "nnomp", "facility", "deepcore"]
        paper_c = ["--reduced", "--datasets", "mnist", "--ipcs", "1", "--methods", "random,herding", "--pool", "300",
                   "--test-size", "100", "--width", "8", "--feature-epochs", "1", "--epochs", "2", "--models", "1"]
        paper_d = ["--reduced", "--datasets", "mnist", "--ipcs", "1", "--methods", "dm", "--width", "8",
                   "--batch-real", "4", "--epochs-aug", "2", "--models-dm", "1", "--test-size", "100"]
        # each part is one fresh interpreter (importing torch: 3 s of CPU, up to 15 s of wall time on
        # a loaded 2-core machine), so every smoke budget is 40 s though a part needs 4-10 s
        budgets = dict(contract=40, coreset_speed=40, distill_speed=40, mtt_speed=40, peers=40, coreset_paper=40,
                       dm_paper=40)
    else:
        speed = []
        distill = ["--width", "128", "--batch-real", "256", "--ipc", "10", "--iters", "4", "--methods", "dm,dc"]
        mtt = ["--ipc", "10"]
        peers = ["--pairs", "3", "--skip", "deepcore"]
        paper_c = ["--datasets", "mnist", "--ipcs", "1,10,50", "--sets", "1", "--models", "5"]
        paper_d = ["--datasets", "mnist", "--ipcs", "1", "--methods", "dm", "--sets", "1", "--models-dm", "5"]
        budgets = dict(contract=45, coreset_speed=60, distill_speed=60, mtt_speed=40, peers=60, coreset_paper=120,
                       dm_paper=140)
    table = [
        ("contract", pytest_cmd),
        ("coreset_speed", [PY, _bench("coreset_speed.py"), "--device", dev] + speed),
        ("distill_speed", [PY, _bench("distill_speed.py"), "--device", dev] + distill),
        ("mtt_speed", [PY, _bench("distill_speed_mtt.py"), "--device", dev] + mtt),
        ("peers", [PY, _bench("peers.py"), "--device", dev] + peers),
        ("coreset_paper", [PY, _bench("coreset_paper_protocol.py"), "--device", dev] + paper_c),
        ("dm_paper", [PY, _bench("distill_paper_protocol.py"), "--device", dev] + paper_d),
    ]
    return [dict(name=n, budget=budgets[n], cmd=c) for n, c in table]


def dm_seconds_per_step(log: Path) -> float | None:
    """DM's library s / iteration from a distill_speed log (the first 'dm | library' row)."""
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] == "dm" and cells[1].startswith("library"):
            try:
                return float(cells[2])
            except ValueError:
                return None
    return None


def dm_steps_that_fit(budget: float, per_step: float | None, smoke: bool) -> tuple[int, str]:
    """DM's step count for the dm_paper part: the paper's if it fits in ~70 % of the budget (the rest
    is loading and evaluation), else as many as fit, with the reason."""
    if smoke:
        return 3, "smoke"
    if per_step is None:
        return 2000, "no DM timing from distill_speed: 2,000 steps (REDUCED)"
    fit = int(0.7 * budget / max(per_step, 1e-4))
    if fit >= DM_PAPER_STEPS:
        return DM_PAPER_STEPS, f"paper's {DM_PAPER_STEPS} steps fit ({per_step:.4f} s / step)"
    return max(fit, 1), f"{fit} steps fit in the budget at {per_step:.4f} s / step (REDUCED, paper: {DM_PAPER_STEPS})"


def run_part(part: dict, out: Path, env: dict) -> dict:
    log = out / f"{part['name']}.log"
    start = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(part["cmd"]) + "\n\n")
        fh.flush()
        proc = subprocess.Popen(part["cmd"], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=part["budget"])
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the part and the workers it spawned
            proc.wait()
            status = "killed at budget (partial output in the log)"
    return dict(status=status, wall=time.monotonic() - start, log=log.name)


def environment() -> list[str]:
    import torch

    lines = [f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"python {sys.version.split()[0]}, torch {torch.__version__}"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        lines.append(f"commit {commit}")
    except (OSError, subprocess.TimeoutExpired):
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines.append(f"device {p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    else:
        lines.append(f"no CUDA device; {os.cpu_count()} CPU cores")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the logs and summary (created)")
    parser.add_argument("--smoke", action="store_true", help="every part tiny on the CPU (under a minute)")
    parser.add_argument("--total", type=float, default=None, help="wall-time budget of the whole run in s "
                        "(default 540, 9 minutes; smoke: 240)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these parts")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = args.total or (240.0 if args.smoke else 540.0)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device is visible: run on the GPU machine, or use --smoke")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TQDM_DISABLE": "1"}
    if args.smoke:
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    start = time.monotonic()
    results = []
    for part in parts(args.smoke):
        if args.only is not None and part["name"] not in args.only:
            continue
        if part["name"] == "dm_paper":
            steps, why = dm_steps_that_fit(part["budget"], dm_seconds_per_step(out / "distill_speed.log"), args.smoke)
            part["cmd"] += ["--dm-steps", str(steps)]
            part["note"] = why
        left = total - (time.monotonic() - start)
        if part["budget"] > left:
            res = dict(status=f"skipped: its budget {part['budget']} s would overrun the {left:.0f} s left", wall=0.0,
                       log="")
        else:
            res = run_part(part, out, env)
        results.append({**part, **res})
        print(f"{part['name']:14s} {res['status']} ({res['wall']:.1f} s of {part['budget']} s)", flush=True)
    elapsed = time.monotonic() - start
    lines = ["# gpu_check" + (" (SMOKE: tiny CPU run, numbers mean nothing)" if args.smoke else ""), ""]
    lines += [f"- {e}" for e in environment()]
    lines += [f"- total {elapsed:.0f} s of a {total:.0f} s budget", "",
              "| part | budget s | wall s | status | log | note |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['budget']} | {r['wall']:.1f} | {r['status']} | {r['log']} | "
                     f"{r.get('note', '')} |")
    lines += ["", "Commands:", ""] + [f"- {r['name']}: `{' '.join(r['cmd'])}`" for r in results]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(
        dict(total_s=elapsed, budget_s=total, smoke=args.smoke,
             parts=[{k: r[k] for k in ("name", "budget", "wall", "status", "cmd", "log")} for r in results]),
        indent=1))
    print(f"\nsummary in {out / 'summary.md'} ({elapsed:.0f} s)")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
