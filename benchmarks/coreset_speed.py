"""Speed and memory of coreset selection, against naive implementations and apricot.

Prints markdown tables (copy them into benchmarks/README_coresets.md):

1. The machine's read bandwidth, measured in the same run (best of several sums over a
   large tensor on the chosen device).
2. Greedy feature-space methods (default: herding and k-center greedy, any registered
   method with ``--methods``) on random float32 features, d = 512, one global selection
   (``per_class=False``) of ``--budget`` points: time, peak memory, the memory-bandwidth
   lower bound ``steps x n x d x 4 bytes / bandwidth`` (each greedy step must read the
   feature matrix once) and time / bound, plus the speed-up over a naive implementation
   timed on ``--naive-budget`` steps.
3. Facility location (lazy greedy) on n = 5,000: gain evaluations against the naive
   greedy, time against the naive greedy (on a prefix of the steps) and against apricot's
   lazy greedy on the same precomputed matrix, and whether the picks are identical.

Peak memory: every measurement runs in a fresh process. On CPU it is the growth of the
resident set (Linux VmHWM after resetting it through /proc/self/clear_refs, minus VmRSS
before the call; tracemalloc does not see torch's allocations). On CUDA it is
``torch.cuda.max_memory_allocated`` minus the memory allocated before the call.

Usage::

    python benchmarks/coreset_speed.py --quick              # n in {1000, 10000}, smaller budgets
    python benchmarks/coreset_speed.py                      # n in {1000, 10000, 100000}
    python benchmarks/coreset_speed.py --device cuda        # the same on a GPU
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time


# ----------------------------------------------------------------------------- helpers
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_data(n: int, d: int, device: str, seed: int = 0):
    """Random float32 features (n, d) and labels in 10 classes, drawn on the CPU."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, d, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen)
    return features, y.to(device)


def naive_herding(f, k):
    """Literal herding: every step forms all candidate means (an n x d temporary)."""
    import torch

    mu = f.mean(0)
    total = torch.zeros_like(mu)
    taken = torch.zeros(f.shape[0], dtype=torch.bool, device=f.device)
    picks = []
    for t in range(k):
        dist = torch.linalg.vector_norm(mu - (total + f) / (t + 1), dim=1).masked_fill(taken, float("inf"))
        j = int(dist.argmin())
        picks.append(j)
        taken[j] = True
        total = total + f[j]
    return picks


def naive_k_center(f, k, first=0):
    """Literal farthest-first: every step recomputes distances to all chosen points."""
    import torch

    picks = [first]
    while len(picks) < k:
        d = torch.cdist(f, f[picks]).min(1).values
        d[picks] = -1
        picks.append(int(d.argmax()))
    return picks


NAIVE = {"herding": naive_herding, "kcenter": naive_k_center}
MEMORY_BOUND = {"herding", "kcenter"}


def _measure(kind, name, n, d, budget, device, per_class, queue):
    """Child process: build the data, run one method once, report (seconds, peak MiB)."""
    try:
        queue.put(_measure_core(kind, name, n, d, budget, device, per_class))
    except Exception as exc:  # noqa: BLE001 - report any failure to the parent instead of hanging
        queue.put(exc)


def _measure_core(kind, name, n, d, budget, device, per_class):
    import torch

    from distillkit.coresets import select

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    f, y = make_data(n, d, device)
    # warm-up on a slice: lazy imports (tqdm, scipy) and allocator pools are not the method's memory
    warm = min(n, 200)
    select(name, f[:warm], y[:warm], min(budget, 20), per_class=False, features=f[:warm], generator=0)
    if kind != "library":
        NAIVE[name](f[:warm], min(budget, 5))
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_kib("VmRSS") * 1024
        _reset_peak()
    start = time.perf_counter()
    if kind == "library":
        select(name, f, y, budget, per_class=per_class, features=f, generator=0)
    else:
        NAIVE[name](f, budget)
    _sync(device)
    seconds = time.perf_counter() - start
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _rss_kib("VmHWM") * 1024 - before
    return seconds, max(peak, 0) / 2**20


IN_PROCESS = False  # --in-process: no child processes (smoke runs; the peak memory is then not the method's own)


def measure(kind, name, n, d, budget, device, per_class=False):
    if IN_PROCESS:
        return _measure_core(kind, name, n, d, budget, device, per_class)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(kind, name, n, d, budget, device, per_class, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if isinstance(result, Exception):
        raise result
    return result


def read_bandwidth(device: str, mib: int = 512, repeats: int = 7) -> float:
    """Bytes per second of a full read (``x.sum()``) of a float32 tensor of ``mib`` MiB."""
    import torch

    x = torch.ones(mib * 2**20 // 4, device=device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        x.sum()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


# ----------------------------------------------------------------------------- tables
def reads(n, d, budget, per_class):
    """Bytes a memory-bound greedy must read: sum over blocks of steps x rows x d x 4."""
    from distillkit.coresets import class_budgets

    if not per_class:
        return budget * n * d * 4
    _, y = make_data(n, 1, "cpu")
    counts = torch_bincount(y)
    return sum(k * counts[c] * d * 4 for c, k in class_budgets(y, budget).items())


def torch_bincount(y):
    return {c: int(v) for c, v in enumerate(y.bincount().tolist())}


def greedy_table(methods, sizes, d, budget, naive_budget, device, bandwidth):
    rows = ["| method | mode | n | d | budget | time (s) | peak memory (MiB) | bandwidth bound (s) | time / bound "
            f"| naive, {naive_budget} steps (s) | ours, {naive_budget} steps (s) | speed-up |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        print(row, flush=True)
    for name in methods:
        for n in sizes:
            for per_class in (True, False):
                k = min(budget, n // 4)
                seconds, peak = measure("library", name, n, d, k, device, per_class)
                bound = reads(n, d, k, per_class) / bandwidth if name in MEMORY_BOUND else float("nan")
                naive = ours_short = speedup = "—"
                if name in NAIVE and not per_class:
                    kn = min(naive_budget, n)
                    t_naive, _ = measure("naive", name, n, d, kn, device)
                    t_ours, _ = measure("library", name, n, d, kn, device)
                    naive, ours_short, speedup = f"{t_naive:.2f}", f"{t_ours:.3f}", f"{t_naive / t_ours:.0f}x"
                ratio = f"{seconds / bound:.2f}" if bound == bound else "—"
                bound_text = f"{bound:.3f}" if bound == bound else "—"
                mode = "per class" if per_class else "global"
                rows.append(f"| {name} | {mode} | {n:,} | {d} | {k} | {seconds:.3f} | {peak:.1f} | {bound_text} "
                            f"| {ratio} | {naive} | {ours_short} | {speedup} |")
                print(rows[-1], flush=True)
    return rows


def facility_inputs(n: int, device: str):
    """Squared Pearson correlations between n MNIST images (apricot's 'corr' similarity),
    or between n clustered random points when MNIST is not available. Float64."""
    import torch

    try:
        from distillkit.data import load_mnist

        x, _ = load_mnist(split="train", download=False, progress=False)
        feats = x[:n].flatten(1).double()
        source = f"squared correlations of the first {n:,} MNIST training images"
    except Exception:  # noqa: BLE001 - any missing-data error: fall back to synthetic data
        gen = torch.Generator().manual_seed(0)
        centres = torch.randn(20, 64, generator=gen, dtype=torch.float64)
        feats = centres[torch.randint(0, 20, (n,), generator=gen)] + torch.randn(n, 64, generator=gen,
                                                                                 dtype=torch.float64)
        source = f"squared correlations of {n:,} points from 20 random Gaussian clusters (MNIST not found)"
    feats = feats - feats.mean(1, keepdim=True)
    feats = feats / torch.linalg.vector_norm(feats, dim=1, keepdim=True)
    sim = (feats @ feats.T).clamp(-1, 1) ** 2  # (n, n)
    return sim.to(device), source


def facility_table(n, budget, naive_steps, device, use_apricot):
    import numpy as np
    import torch

    from distillkit.coresets import facility_location, facility_location_naive

    sim, source = facility_inputs(n, device)
    start = time.perf_counter()
    lazy = facility_location(sim, budget)
    _sync(device)
    t_lazy = time.perf_counter() - start
    naive_evals = sum(n - t for t in range(budget))
    start = time.perf_counter()
    lazy_short = facility_location(sim, naive_steps)
    _sync(device)
    t_lazy_short = time.perf_counter() - start
    start = time.perf_counter()
    naive_short = facility_location_naive(sim, naive_steps)
    _sync(device)
    t_naive_short = time.perf_counter() - start
    same_naive = torch.equal(naive_short.indices, lazy.indices[:naive_steps]) and torch.equal(
        naive_short.gains, lazy.gains[:naive_steps])
    del lazy_short
    apricot_time, same_apricot = "—", "—"
    if use_apricot:
        try:
            from apricot import FacilityLocationSelection

            host = sim.cpu().numpy()
            FacilityLocationSelection(5, metric="precomputed", optimizer="lazy").fit(host[:300, :300])  # compile
            start = time.perf_counter()
            ref = FacilityLocationSelection(budget, metric="precomputed", optimizer="lazy").fit(host)
            apricot_time = f"{time.perf_counter() - start:.2f}"
            ranking = np.asarray(ref.ranking)
            same = bool((ranking == lazy.indices.numpy()).all())
            close = np.allclose(np.asarray(ref.gains), lazy.gains.numpy(), rtol=1e-9)
            if same and close:
                same_apricot = "yes"
            else:  # explain the first difference: a floating-point tie, or a real disagreement?
                from distillkit.coresets.facility import _candidate_rows, _gains

                ours = lazy.indices.numpy()
                first = int(np.argmax(ranking != ours))
                cur = sim[:, torch.as_tensor(ours[:first], device=sim.device)].max(1).values
                both = _gains(_candidate_rows(sim), cur, torch.as_tensor([ours[first], ranking[first]],
                                                                        device=sim.device))
                gap = abs(float(both[0] - both[1])) / float(both[0])
                shared = len(set(ours.tolist()) & set(ranking.tolist()))
                f_gap = abs(float(lazy.gains.sum()) - float(np.sum(ref.gains))) / float(lazy.gains.sum())
                same_apricot = (f"first {first} identical; then two gains equal to {gap:.0e} (relative), "
                                f"broken differently; {shared}/{budget} shared, F equal to {f_gap:.0e}")
        except ImportError:
            apricot_time = "apricot not installed"
    rows = [f"Input: {source}, float64, on {device}.", "",
            "| n | budget | lazy evaluations | naive evaluations | fewer | lazy time (s) | apricot lazy time (s) "
            f"| picks = apricot | naive time, {naive_steps} steps (s) | lazy time, {naive_steps} steps (s) "
            f"| picks = naive ({naive_steps} steps) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {n:,} | {budget} | {lazy.info['evaluations']:,} | {naive_evals:,} "
            f"| {naive_evals / lazy.info['evaluations']:.1f}x | {t_lazy:.2f} | {apricot_time} | {same_apricot} "
            f"| {t_naive_short:.2f} | {t_lazy_short:.2f} | {'yes' if same_naive else 'no'} |"]
    for row in rows:
        print(row, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n in {1000, 10000}, budget 200, naive 50 steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--naive-budget", type=int, default=None)
    parser.add_argument("--methods", nargs="*", default=["herding", "kcenter"],
                        help="any registered method that works from features alone")
    parser.add_argument("--fl-n", type=int, default=5000)
    parser.add_argument("--fl-budget", type=int, default=500)
    parser.add_argument("--fl-naive-steps", type=int, default=None)
    parser.add_argument("--no-apricot", action="store_true")
    parser.add_argument("--skip-greedy", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-facility", action="store_true")
    parser.add_argument("--bandwidth-mib", type=int, default=512, help="MiB summed to measure read bandwidth")
    parser.add_argument("--in-process", action="store_true", help="measure in this process, not one child per "
                        "row (smoke runs: saves an interpreter start per row; peak memory is then approximate)")
    args = parser.parse_args(argv)
    global IN_PROCESS
    IN_PROCESS = args.in_process

    import torch

    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    sizes = args.sizes or ([1000, 10000] if args.quick else [1000, 10000, 100000])
    budget = args.budget or (200 if args.quick else 1000)
    naive_budget = args.naive_budget or (50 if args.quick else 100)
    fl_naive_steps = args.fl_naive_steps or (20 if args.quick else 50)
    bandwidth = read_bandwidth(args.device, mib=args.bandwidth_mib)
    print(f"Device: {args.device}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads; "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s (best of 7 sums over {args.bandwidth_mib} MiB, float32).\n")
    if not args.skip_greedy:
        greedy_table(args.methods, sizes, args.d, budget, naive_budget, args.device, bandwidth)
        print()
    if not args.skip_facility:
        facility_table(args.fl_n, args.fl_budget, fl_naive_steps, args.device, not args.no_apricot)


if __name__ == "__main__":
    main()
