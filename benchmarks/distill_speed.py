"""Per-iteration time and peak memory of distillation methods against straightforward
per-class loop implementations, measured in the same run on MNIST.

One function per method (``bench_dc``, ``bench_dm``; add ``bench_<name>`` and list it in
``BENCHES`` for another method). Each variant runs in a fresh process (unless
``--in-process``, for smoke runs) so its peak memory is its own:

* on CUDA, ``torch.cuda.max_memory_allocated`` minus the memory allocated before the run;
* on CPU, the growth of the resident set (Linux ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``, minus ``VmRSS`` before the run).

Variants
--------
DM, library
    ``distillkit.distill.dm``: on CUDA (and for BatchNorm networks) every class's real batch
    through **one** forward pass and the whole synthetic set through another; on CPU one class
    at a time, its real batch under ``no_grad`` in chunks; Siamese DSA drawn per class.
DM, per-class loop
    The reference's structure: one forward pass per class for the real batch and one for
    the synthetic images of the class, the same augmentation and loss.
DM, per-class loop, reference-style augmentation
    The same loop with the augmentation organised as the reference organises it (global RNG
    re-seeded before every draw, per-sample affine matrices built in Python lists).
DC, library
    ``distillkit.distill.dc`` (per-class loop on CPU, all classes' gradients in one
    ``torch.func.vmap`` pass on CUDA) with the inner loop on tensors.
DC, per-class loop
    The reference's structure: per-class gradients, and inner-loop training through a
    ``DataLoader`` over a ``TensorDataset`` as in the reference's ``epoch()``.

An "iteration" is one outer step with a new random network (for DC at 10 images per
class: 10 matching steps and 9 x 50 inner epochs). The first iteration is a warm-up; the
table reports the median of the rest.

Usage::

    python benchmarks/distill_speed.py                    # CPU-sized: width 32, 64 real images per class
    python benchmarks/distill_speed.py --device cuda --width 128 --batch-real 256 --iters 10
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import statistics
import time


# ----------------------------------------------------------------------------- helpers
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _data(device: str, pool: int | None = None):
    from distillkit.data import load_mnist

    x, y = load_mnist(split="train", progress=False)
    if pool is not None:  # the first ``pool`` images (a smoke run)
        x, y = x[:pool], y[:pool]
    return ((x - 0.1307) / 0.3081).to(device), y.to(device)


def _model_fn(width: int):
    from distillkit.models import ConvNet

    return lambda generator=None: ConvNet(1, 10, im_size=28, width=width, generator=generator)


def _run_child(queue, name, fn, args):
    """Run ``fn(args, data)`` (returns per-iteration times) and report its times and peak memory
    (measured from after the data were loaded)."""
    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    data = _data(device, args.pool)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
        base = _status_kib("VmRSS") * 1024
    cpu = time.process_time()
    times = fn(args, data)
    _sync(device)
    cpu = (time.process_time() - cpu) / len(times)
    peak = (torch.cuda.max_memory_allocated() - base if device.startswith("cuda")
            else _status_kib("VmHWM") * 1024 - base)
    queue.put((name, times, peak, cpu))


def measure(name, fn, args):
    if args.in_process:  # smoke runs: no interpreter start per variant (the peak memory is then approximate)
        results = queue.SimpleQueue()
        _run_child(results, name, fn, args)
        return results.get()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_run_child, args=(results, name, fn, args))
    proc.start()
    result = results.get()
    proc.join()
    return result


# ----------------------------------------------------------------------------- DM
def dm_library(args, data):
    from distillkit.distill import dm
    from distillkit.distill.augment import DIGITS_STRATEGY

    x, y = data
    s = dm(x, y, args.ipc, model_fn=_model_fn(args.width), steps=args.iters, batch_real=args.batch_real,
           dsa_strategy=DIGITS_STRATEGY, generator=0)
    return s.info["times"]


def dm_loop(args, data, reference_augment=False):
    """DM with one forward pass per class (the reference's structure), the same loss, and either
    the library's augmentation or a reference-style one."""
    import torch

    from distillkit.distill import ClassSampler, init_synthetic
    from distillkit.distill._base import _new_net
    from distillkit.distill.augment import DIGITS_STRATEGY, _apply, _sample

    x, y = data
    gen = torch.Generator().manual_seed(0)
    x_syn, _ = init_synthetic(x, y, args.ipc, generator=gen)
    x_syn.requires_grad_(True)
    opt = torch.optim.SGD([x_syn], lr=1.0, momentum=0.5)
    sampler, parts, times = ClassSampler(y), DIGITS_STRATEGY.split("_"), []
    for _ in range(args.iters):
        _sync(args.device)
        start = time.perf_counter()
        net = _new_net(_model_fn(args.width), gen, x)
        for p in net.parameters():
            p.requires_grad_(False)
        loss = 0.0
        for k, c in enumerate(sampler.classes):
            xr = x[sampler.sample(c, args.batch_real, gen).to(x.device)]
            xs = x_syn[k * args.ipc:(k + 1) * args.ipc]
            if reference_augment:
                seed = int(torch.randint(100_000, (1,), generator=gen))
                xr, xs = _reference_style_dsa(xr, parts, seed), _reference_style_dsa(xs, parts, seed)
            else:
                params = _sample(parts, 1, gen)
                xr, xs = _apply(xr, params), _apply(xs, params)
            loss = loss + ((net.embed(xr).mean(0) - net.embed(xs).mean(0)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(args.device)
        times.append(time.perf_counter() - start)
    return times


def dm_loop_reference_augment(args, data):
    return dm_loop(args, data, reference_augment=True)


def _reference_style_dsa(x, parts, seed):
    """Siamese DSA structured as the reference does it: the global RNG re-seeded before every
    draw, per-sample parameters then overwritten by the first sample's, affine matrices built
    in Python lists on the CPU. (Benchmark only; the library never touches the global RNG.)"""
    import math

    import torch
    import torch.nn.functional as F

    n, state = x.shape[0], [seed]

    def draw(*shape):
        torch.random.manual_seed(state[0])
        state[0] += 1
        return torch.rand(*shape)

    torch.random.manual_seed(state[0])
    state[0] += 1
    family = parts[int(torch.randint(0, len(parts), (1,)))]
    if family == "color":
        for f in (lambda t, u: t + (u - 0.5), lambda t, u: (t - t.mean(1, keepdim=True)) * (u * 2) + t.mean(1, keepdim=True),
                  lambda t, u: (t - t.mean((1, 2, 3), keepdim=True)) * (u + 0.5) + t.mean((1, 2, 3), keepdim=True)):
            u = draw(n, 1, 1, 1).to(x.device)
            u[:] = u[0].clone()
            x = f(x, u)
        return x
    if family in ("scale", "rotate"):
        if family == "scale":
            sx, sy = draw(n) * (1.2 - 1 / 1.2) + 1 / 1.2, draw(n) * (1.2 - 1 / 1.2) + 1 / 1.2
            theta = [[[float(sx[i]), 0.0, 0.0], [0.0, float(sy[i]), 0.0]] for i in range(n)]
        else:
            a = (draw(n) - 0.5) * 2 * 15 / 180 * math.pi
            theta = [[[math.cos(a[i]), -math.sin(a[i]), 0.0], [math.sin(a[i]), math.cos(a[i]), 0.0]] for i in range(n)]
        theta = torch.tensor(theta, dtype=torch.float)
        theta[:] = theta[0].clone()
        grid = F.affine_grid(theta, list(x.shape), align_corners=True).to(x.device)
        return F.grid_sample(x, grid, align_corners=True)
    if family == "flip":
        u = draw(n, 1, 1, 1).to(x.device)
        u[:] = u[0].clone()
        return torch.where(u < 0.5, x.flip(3), x)
    u = torch.stack([draw(n), draw(n)], 1)  # crop or cutout: integer grids built per batch
    u[:] = u[0].clone()
    h = x.shape[2]
    b, r, c = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(h), indexing="ij")
    if family == "crop":
        s = int(h * 0.125 + 0.5)
        t = (u * (2 * s + 1)).long() - s
        r = (r + t[:, 0, None, None] + 1).clamp(0, h + 1)
        c = (c + t[:, 1, None, None] + 1).clamp(0, h + 1)
        return F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[b, r.to(x.device), c.to(x.device)].permute(0, 3, 1, 2)
    cut = int(h * 0.5 + 0.5)
    off = (u * (h + 1 - cut % 2)).long() - cut // 2
    hole = ((r >= off[:, 0, None, None]) & (r < off[:, 0, None, None] + cut)
            & (c >= off[:, 1, None, None]) & (c < off[:, 1, None, None] + cut))
    return x * (~hole).to(x.device, x.dtype)[:, None]


def bench_dm(args):
    return [("DM", "library", measure("dm-lib", dm_library, args)),
            ("DM", "per-class loop, reference-style augmentation", measure("dm-ref", dm_loop_reference_augment, args)),
            ("DM", "per-class loop", measure("dm-loop", dm_loop, args))]


# ----------------------------------------------------------------------------- DC
def dc_library(args, data):
    from distillkit.distill import dc

    x, y = data
    s = dc(x, y, args.ipc, model_fn=_model_fn(args.width), steps=args.iters, batch_real=args.batch_real,
           init="real", generator=0)
    return s.info["times"]


def dc_loop(args, data):
    """DC as the reference structures it: per-class gradients, DataLoader-driven inner loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from distillkit.distill import ClassSampler, default_loops, gradient_matching_distance, init_synthetic
    from distillkit.distill._base import _new_net

    x, y = data
    gen = torch.Generator().manual_seed(0)
    x_syn, y_syn = init_synthetic(x, y, args.ipc, generator=gen)
    x_syn.requires_grad_(True)
    opt = torch.optim.SGD([x_syn], lr=0.1, momentum=0.5)
    sampler, times = ClassSampler(y), []
    outer, inner = default_loops(args.ipc)
    for _ in range(args.iters):
        _sync(args.device)
        start = time.perf_counter()
        net = _new_net(_model_fn(args.width), gen, x)
        params = list(net.parameters())
        net_opt = torch.optim.SGD(params, lr=0.01)
        for ol in range(outer):
            loss = 0.0
            for k, c in enumerate(sampler.classes):
                idx = sampler.sample(c, args.batch_real, gen).to(x.device)
                g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(x[idx]), y[idx]), params)]
                xs, ys = x_syn[k * args.ipc:(k + 1) * args.ipc], y_syn[k * args.ipc:(k + 1) * args.ipc]
                g_syn = torch.autograd.grad(F.cross_entropy(net(xs), ys), params, create_graph=True)
                loss = loss + gradient_matching_distance(g_syn, g_real)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ol == outer - 1:
                break
            loader = DataLoader(TensorDataset(x_syn.detach().clone(), y_syn.clone()), batch_size=256, shuffle=True)
            for _ in range(inner):
                for xb, yb in loader:
                    net_loss = F.cross_entropy(net(xb), yb)
                    net_opt.zero_grad()
                    net_loss.backward()
                    net_opt.step()
        _sync(args.device)
        times.append(time.perf_counter() - start)
    return times


def bench_dc(args):
    return [("DC", "library", measure("dc-lib", dc_library, args)),
            ("DC", "per-class loop (reference-style)", measure("dc-loop", dc_loop, args))]


BENCHES = {"dc": bench_dc, "dm": bench_dm}


# ----------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default="dm,dc", help="comma-separated, from: " + ", ".join(BENCHES))
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--width", type=int, default=32, help="ConvNet width (128 is the paper's)")
    parser.add_argument("--batch-real", type=int, default=64, help="real images per class (256 in the papers)")
    parser.add_argument("--iters", type=int, default=4, help="iterations per variant, the first is a warm-up")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--pool", type=int, default=None, help="use only the first POOL MNIST images (smoke runs)")
    parser.add_argument("--in-process", action="store_true", help="run every variant in this process (smoke runs)")
    args = parser.parse_args(argv)
    import torch

    print(f"distillation speed | device {args.device} | {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} | torch {torch.__version__} | threads {args.threads} | "
          f"MNIST, {args.ipc} images per class, ConvNet-3 width {args.width}, {args.batch_real} real images per "
          f"class, median of {args.iters - 1} iterations after a warm-up\n")
    print("| method | implementation | s / iteration (median wall) | CPU s / iteration (mean) | peak memory (MiB) | "
          "speed-up vs loop (wall) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.methods.split(","):
        rows = BENCHES[name](args)
        loop_time = statistics.median(rows[-1][2][1][1:] or rows[-1][2][1])
        for method, impl, (_, times, peak, cpu) in rows:
            t = statistics.median(times[1:] or times)
            print(f"| {method} | {impl} | {t:.3f} | {cpu:.3f} | {peak / 2**20:.0f} | {loop_time / t:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
