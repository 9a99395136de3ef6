"""Per-iteration time and peak memory of one MTT distillation iteration.

Three implementations of the same iteration (pick an expert and a start epoch, unroll
``syn_steps`` differentiable SGD steps of the student on the synthetic set, normalised
parameter distance, backward to the pixels and the step size):

* ``straightforward``: written the way the reference code does it (a list of parameter
  tensors per step, the expert's parameters copied from the CPU buffer tensor by tensor
  every iteration, the loss summed parameter by parameter);
* ``distillkit``: :func:`distillkit.distill.mtt` (flat parameters, ``torch.func.functional_call``);
* ``distillkit+ckpt``: the same with ``checkpoint=True`` (gradient checkpointing over the
  student steps: activation memory for one step instead of all of them).

Each implementation runs in its own subprocesses (unless ``--no-memory``, which times all three in
this process), one for the time and one for the memory,
so peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated`` over what was allocated before; on CPU the peak of the
resident set size, sampled every millisecond by a thread while the iterations run, over its
size before them (large blocks are mmap-allocated, ``MALLOC_MMAP_THRESHOLD_``, so freed memory
leaves the resident set at once). The straightforward loss and gradients are checked against
distillkit's before timing.

    python benchmarks/distill_speed_mtt.py                  # CPU, reduced budget (says so)
    python benchmarks/distill_speed_mtt.py --device cuda    # the paper's ConvNet-3 width 128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import torch
from torch.func import functional_call
from torch.nn import functional as F


def load(dataset: str, n: int):
    from distillkit.data import load_digits, load_mnist

    if dataset == "digits":
        return load_digits("train")
    x, y = load_mnist(split="train")
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:n]
    return x[idx], y[idx]


def straightforward_iteration(model, trajectories, x_syn, y_syn, lr, syn_steps, expert_epochs, gen):
    """One MTT iteration in the style of the reference implementation."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    e = int(torch.randint(0, trajectories.shape[0], (1,), generator=gen))
    t = int(torch.randint(0, trajectories.shape[1] - expert_epochs, (1,), generator=gen))

    def as_list(flat):  # the reference keeps per-tensor copies and moves them one by one
        out, start = [], 0
        for shape in shapes:
            size = int(torch.Size(shape).numel())
            out.append(flat[start:start + size].view(shape).to(x_syn.device).clone())
            start += size
        return out

    start, target = as_list(trajectories[e, t]), as_list(trajectories[e, t + expert_epochs])
    params = [p.requires_grad_(True) for p in [s.clone() for s in start]]
    for _ in range(syn_steps):
        idx = torch.randperm(x_syn.shape[0], generator=gen).to(x_syn.device)
        out = functional_call(model, dict(zip(names, params)), (x_syn[idx],))
        grads = torch.autograd.grad(F.cross_entropy(out, y_syn[idx]), params, create_graph=True)
        params = [p - lr * g for p, g in zip(params, grads)]
    num = sum(((p - q) ** 2).sum() for p, q in zip(params, target))
    den = sum(((p - q) ** 2).sum() for p, q in zip(start, target))
    return num / den


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Largest resident set size seen by a sampling thread while the block runs."""

    def __enter__(self):
        self.peak, self._stop = rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def worker(args) -> dict:
    from distillkit.distill.experts import train_expert_trajectories
    from distillkit.distill.mtt import mtt
    from distillkit.models import ConvNet

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y = load(args.dataset, args.n)
    x, y = x.to(device), y.to(device)
    n_classes = int(y.max()) + 1

    def model_fn(generator=None):
        return ConvNet(x.shape[1], n_classes, im_size=x.shape[-1], width=args.width, generator=generator)

    experts = train_expert_trajectories(x, y, model_fn=model_fn, n_experts=1, epochs=expert_epochs(args) + 1,
                                        batch_size=256, generator=0)
    common = dict(experts=experts, model_fn=model_fn, syn_steps=args.syn_steps, expert_epochs=expert_epochs(args),
                  lr_img=100.0, generator=0)
    if args.impl == "straightforward":
        model = model_fn(generator=0).to(device)
        gen = torch.Generator().manual_seed(0)
        x_syn = x[torch.cat([(y.cpu() == c).nonzero()[:args.ipc, 0] for c in range(n_classes)]).to(device)].clone()
        y_syn = torch.arange(n_classes, device=device).repeat_interleave(args.ipc)
        x_syn.requires_grad_(True)
        lr = torch.tensor(0.01, device=device, requires_grad=True)

        def one():
            loss = straightforward_iteration(model, experts.trajectories, x_syn, y_syn, lr, args.syn_steps,
                                             expert_epochs(args), gen)
            torch.autograd.grad(loss, [x_syn, lr])
    else:
        def one():
            mtt(x, y, args.ipc, steps=1, checkpoint=args.impl.endswith("ckpt"), **common)

    one()  # warm-up (allocator, kernels)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    sync()
    with PeakRSS() as rss:
        tic, cpu_tic = time.perf_counter(), time.process_time()
        for _ in range(args.iters):
            one()
        sync()
        seconds = (time.perf_counter() - tic) / args.iters
        cpu_seconds = (time.process_time() - cpu_tic) / args.iters
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = rss.peak - base
    return {"impl": args.impl, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_bytes": max(peak, 0)}


def check_agreement(args) -> float:
    """Largest relative difference between the straightforward and distillkit loss and gradients."""
    from distillkit.distill.losses import trajectory_matching_loss
    from distillkit.distill.unroll import unroll_sgd
    from distillkit.models import ConvNet

    torch.set_num_threads(args.threads)
    x, y = load(args.dataset, args.n)
    x_syn, y_syn = x[:20].double(), y[:20]
    model = ConvNet(x.shape[1], int(y.max()) + 1, im_size=x.shape[-1], width=8, generator=0).double()
    gen = torch.Generator().manual_seed(0)
    traj = torch.randn(1, 3, sum(p.numel() for p in model.parameters()), generator=gen, dtype=torch.float64) * 0.1
    results = []
    for impl in ("straightforward", "distillkit"):
        xs = x_syn.clone().requires_grad_(True)
        lr = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
        if impl == "straightforward":
            loss = straightforward_iteration(model, traj, xs, y_syn, lr, 3, 1, torch.Generator().manual_seed(1))
        else:
            g = torch.Generator().manual_seed(1)
            e, t = int(torch.randint(0, 1, (1,), generator=g)), int(torch.randint(0, 2, (1,), generator=g))
            batches = []
            for _ in range(3):
                idx = torch.randperm(20, generator=g)
                batches.append((xs[idx], y_syn[idx]))
            theta = unroll_sgd(model, traj[e, t], batches, lr.expand(3))
            loss = trajectory_matching_loss(theta, traj[e, t], traj[e, t + 1])
        results.append([loss, *torch.autograd.grad(loss, [xs, lr])])
    return max(float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-30))
               for a, b in zip(*results))


def expert_epochs(args) -> int:
    return 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--n", type=int, default=2000, help="real images used to train the expert")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--syn-steps", type=int, default=None, help="default: 20 on cuda, 10 on cpu")
    parser.add_argument("--width", type=int, default=None, help="default: 128 on cuda, 32 on cpu")
    parser.add_argument("--iters", type=int, default=None, help="default: 10 on cuda, 2 on cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    parser.add_argument("--no-memory", action="store_true", help="time every implementation in this process and skip the peak-memory processes (smoke runs)")
    parser.add_argument("--impl", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    args.syn_steps = args.syn_steps or (20 if cuda else 10)
    args.width = args.width or (128 if cuda else 32)
    args.iters = args.iters or (10 if cuda else 2)
    if args.impl:  # a worker subprocess
        print(json.dumps(worker(args)))
        return
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for but no GPU is visible")
    print(f"MTT iteration on {args.dataset} ({args.n} images), ipc {args.ipc}, ConvNet-3 width {args.width}, "
          f"syn_steps {args.syn_steps}, batch_syn = all {10 * args.ipc} images, {args.iters} timed iterations, "
          f"device {args.device}" + ("" if cuda else " (reduced CPU budget; run with --device cuda for the paper's "
                                                     "width 128 and 20 steps)"))
    print(f"straightforward vs distillkit, largest relative difference of loss and gradients: {check_agreement(args):.1e}")
    rows = []
    for impl in ("straightforward", "distillkit", "distillkit+ckpt"):
        cmd = [sys.executable, __file__, "--impl", impl] + [a for a in sys.argv[1:]]
        cmd += ["--syn-steps", str(args.syn_steps), "--width", str(args.width), "--iters", str(args.iters)]
        if args.no_memory:  # smoke runs: time in this process, no interpreter start per implementation
            rows.append({**worker(argparse.Namespace(**{**vars(args), "impl": impl})), "peak_bytes": 0})
            continue
        timing = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        # memory in a second process whose large blocks are mmap-ed, so that RSS follows live memory
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        memory = json.loads(subprocess.run(
            cmd + ["--measure", "memory"], check=True, capture_output=True, text=True, env=env).stdout.splitlines()[-1])
        rows.append({**timing, "peak_bytes": memory["peak_bytes"]})
    base = rows[0]
    memory = "peak CUDA memory" if cuda else "peak RSS growth"
    print(f"\n| implementation | s / iteration (wall) | CPU s / iteration | speed-up (wall) | {memory} (MiB) "
          "| memory ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mem = ("— | —" if args.no_memory else
               f"{r['peak_bytes'] / 2**20:.1f} | {r['peak_bytes'] / max(base['peak_bytes'], 1):.2f}")
        print(f"| {r['impl']} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {base['seconds'] / r['seconds']:.2f}x | "
              f"{mem} |")
    print("\nThe three implementations compute the same iteration (checked above); distillkit's gain is not "
          "speed but safety (positive step size, NaN guard) and, with checkpointing, memory.")


if __name__ == "__main__":
    main()
