"""distillkit side by side with the implementations its users would otherwise pick.

Every row runs distillkit and one peer on the same input, with the same thread count,
interleaved A B A B (``--pairs`` pairs, default 5), and reports the medians, the ratio
peer / distillkit (above 1: distillkit is faster) and whether the outputs agree. Peers
are imported from what is installed (from PyPI); no peer code lives in this repository:

============================  ===========================================  ==========================
row                           peer                                         install
============================  ===========================================  ==========================
OMP, k = 100 / 500            scikit-learn ``orthogonal_mp``               ``pip install scikit-learn``
non-negative OMP (GradMatch)  CORDS ``OrthogonalMP_REG_Parallel``          ``pip install cords``
facility location             apricot ``FacilityLocationSelection`` (lazy) ``pip install apricot-select``
k-center greedy, herding      DeepCore (only if ``import deepcore`` works)  not on PyPI as a library
============================  ===========================================  ==========================

A peer that cannot be imported gives a row that says how to install it. CORDS 0.0.4
pins old versions of many packages; ``pip install --no-deps --target DIR cords`` and
``PYTHONPATH=DIR`` are enough for its OMP solver.

Inputs: OMP: ``A`` of shape (1,290, 10,000), float32, standard normal (columns are the
candidates), ``b`` standard normal (plain OMP) or the mean column (GradMatch's target,
non-negative OMP with ridge penalty ``lam = 1``, CORDS's default). Facility location:
squared correlations of MNIST images (of clustered random points without MNIST), float64.
Agreement: plain OMP, the same support as scikit-learn; non-negative OMP, the residual
``||A x - b||`` of CORDS over distillkit's (above 1: distillkit fits better) and the
ratio of the ridge objectives ``||A x - b||^2 + lam ||x||^2`` that both minimise;
facility location, the same picks in the same order as apricot.

Usage::

    python benchmarks/peers.py                       # the full table (several minutes on 2 cores)
    python benchmarks/peers.py --quick --pairs 2     # small sizes, a smoke run
    python benchmarks/peers.py --threads 1 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(ours, peer, pairs: int, device: str):
    """Median seconds of ``ours`` and ``peer`` run A B A B; returns (t_ours, t_peer, out_ours, out_peer)."""
    t_a, t_b, out_a, out_b = [], [], None, None
    for _ in range(pairs):
        _sync(device)
        start = time.perf_counter()
        out_a = ours()
        _sync(device)
        t_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        out_b = peer()
        _sync(device)
        t_b.append(time.perf_counter() - start)
    return statistics.median(t_a), statistics.median(t_b), out_a, out_b


def _row(name, t_ours, t_peer, peer_name, agree):
    return f"| {name} | {t_ours:.3f} | {peer_name} {t_peer:.3f} | {t_peer / t_ours:.2f} | {agree} |"


def _skip(name, why):
    return f"| {name} | — | — | — | skipped: {why} |"


def omp_inputs(d, n, device, target):
    import torch

    gen = torch.Generator().manual_seed(0)
    A = torch.randn(d, n, generator=gen)  # (d, n): the n columns are the candidates
    b = torch.randn(d, generator=gen) if target == "random" else A.mean(1)
    return A.to(device), b.to(device)


def omp_rows(args, d, n, ks):
    import numpy as np
    from sklearn.linear_model import orthogonal_mp

    from distillkit.coresets import orthogonal_matching_pursuit

    A, b = omp_inputs(d, n, args.device, "random")
    A_np, b_np = A.cpu().numpy(), b.cpu().numpy()
    rows = []
    for k in ks:
        t_o, t_p, res, ref = interleaved(lambda: orthogonal_matching_pursuit(A, b, k),
                                         lambda: orthogonal_mp(A_np, b_np, n_nonzero_coefs=k), args.pairs,
                                         args.device)
        same = set(res.support.tolist()) == set(np.flatnonzero(ref).tolist())
        ratio = float(np.linalg.norm(A_np @ ref - b_np)) / res.residual_norm
        rows.append(_row(f"OMP, A {d:,} x {n:,}, k = {k}", t_o, t_p, "scikit-learn",
                         f"{'same' if same else 'different'} picks, residual ratio {ratio:.4f}"))
        print(rows[-1], flush=True)
    return rows


def nnomp_rows(args, d, n, ks, lam=1.0):
    import torch

    from distillkit.coresets import orthogonal_matching_pursuit

    try:
        from cords.selectionstrategies.helpers.omp_solvers import OrthogonalMP_REG_Parallel
    except ImportError:
        return [_skip(f"non-negative OMP, A {d:,} x {n:,}, k = {k}", "CORDS not installed: pip install cords "
                      "(or pip install --no-deps --target DIR cords and PYTHONPATH=DIR)") for k in ks]
    A, b = omp_inputs(d, n, args.device, "mean")
    rows = []
    for k in ks:
        t_o, t_p, res, x = interleaved(
            lambda: orthogonal_matching_pursuit(A, b, k, positive=True, lam=lam),
            lambda: OrthogonalMP_REG_Parallel(A, b, nnz=k, positive=True, lam=lam, device=args.device),
            args.pairs, args.device)
        A64, b64 = A.double().cpu(), b.double().cpu()
        x = x.double().cpu()
        w = torch.zeros(n, dtype=torch.float64)
        w[res.support] = res.coef.double()
        r_ours = float(torch.linalg.vector_norm(A64 @ w - b64))
        r_peer = float(torch.linalg.vector_norm(A64 @ x - b64))
        obj_ours = r_ours**2 + lam * float(w @ w)
        obj_peer = r_peer**2 + lam * float(x @ x)
        shared = len(set(res.support.tolist()) & set(torch.nonzero(x).squeeze(1).tolist()))
        picks = f"{res.support.numel()} vs {int((x != 0).sum())} atoms, {shared} shared"
        rows.append(_row(f"non-negative OMP, lam = {lam:g}, A {d:,} x {n:,}, k = {k}", t_o, t_p, "CORDS",
                         f"residual ratio {r_peer / r_ours:.3f}, objective ratio {obj_peer / obj_ours:.3f}; "
                         f"{picks}"))
        print(rows[-1], flush=True)
    return rows


def facility_rows(args, sizes):
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from coreset_speed import facility_inputs

    from distillkit.coresets import facility_location

    try:
        from apricot import FacilityLocationSelection
    except ImportError:
        return [_skip(f"facility location {n:,}", "apricot not installed: pip install apricot-select")
                for n, _ in sizes]
    rows = []
    for n, budget in sizes:
        sim, source = facility_inputs(n, args.device)
        host = sim.cpu().numpy()
        FacilityLocationSelection(5, metric="precomputed", optimizer="lazy").fit(host[:300, :300])  # numba compile
        t_o, t_p, sel, ref = interleaved(
            lambda: facility_location(sim, budget),
            lambda: FacilityLocationSelection(budget, metric="precomputed", optimizer="lazy").fit(host),
            args.pairs, args.device)
        ours, theirs = sel.indices.numpy(), np.asarray(ref.ranking)
        if (ours == theirs).all():
            agree = "same picks, same order"
        else:
            first = int(np.argmax(ours != theirs))
            f_ours, f_ref = float(sel.gains.sum()), float(np.sum(ref.gains))
            agree = (f"first {first} picks identical (then a near-tie broken differently), "
                     f"{len(set(ours) & set(theirs))}/{budget} shared, F(ours) / F(apricot) - 1 = "
                     f"{f_ours / f_ref - 1:.1e}")
        rows.append(_row(f"facility location {n:,} x {n:,}, {budget:,} picks", t_o, t_p, "apricot", agree))
        print(rows[-1], flush=True)
        del sim, host
    return rows, source


def deepcore_rows(args):
    try:
        import deepcore  # noqa: F401
    except ImportError:
        why = "DeepCore not importable (it is a research repository, not a PyPI library)"
        return [_skip("k-center greedy", why), _skip("herding", why)]
    why = "deepcore is importable but has no harness here yet: its methods need an args object"
    return [_skip("k-center greedy", why), _skip("herding", why)]


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--pairs", type=int, default=5, help="A B pairs per row (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every contender")
    parser.add_argument("--device", default="cpu", help="device of distillkit's tensors (peers on CPU numpy "
                        "run on the CPU)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["omp", "nnomp", "facility", "deepcore"])
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy, torch and numba start their pools
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.quick:
        d, n, ks, fl = 300, 2000, (20, 100), ((1000, 100), (2000, 200))
    else:
        d, n, ks, fl = 1290, 10000, (100, 500), ((5000, 500), (10000, 1000))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"distillkit commit {_commit()}, {time.strftime('%Y-%m-%d')}, device {args.device}, {args.threads} "
          f"threads, {args.pairs} interleaved pairs (medians), load average {load:.2f} at the start, "
          f"torch {torch.__version__}", flush=True)
    rows = ["| benchmark | distillkit s | peer s | peer / distillkit | outputs agree |", "|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    source = None
    if "omp" not in args.skip:
        rows += omp_rows(args, d, n, ks)
    if "nnomp" not in args.skip:
        rows += nnomp_rows(args, d, n, ks)
    if "facility" not in args.skip:
        fl_rows = facility_rows(args, fl)
        if isinstance(fl_rows, tuple):
            fl_rows, source = fl_rows
        rows += fl_rows
    if "deepcore" not in args.skip:
        rows += deepcore_rows(args)
    print("\n" + "\n".join(rows))
    if source:
        print(f"\nFacility-location input: {source}.")


if __name__ == "__main__":
    main()
