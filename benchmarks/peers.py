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
k-center greedy, herding      DeepCore (its source files, see below)        ``--deepcore-dir``
DM, DC iterations             the authors' loops (main_DM.py, main.py)     ``--peer-dir``, see below
============================  ===========================================  ==========================

DM and DC (``--peer-dir PATH``): the authors' code, github.com/VICO-UoE/DatasetCondensation,
is not a package; fetch it at run time (``git clone``, or ``git --git-dir=REPO.git archive
HEAD | tar -x -C PATH``) and pass the folder. Its ``networks.py`` and ``utils.py``
(``get_network``, ``DiffAugment``, ``ParamDiffAug``, ``match_loss``) are imported in a
subprocess, where three things are patched and nothing else: ``utils.py`` imports
torchvision for its dataset loaders, which no row uses and which has no CPU build here,
so ``sys.modules["torchvision"]`` is a stub in that process only; and their
``ConvNet.embed``/``forward`` flatten with ``.view``, which recent torch refuses on the
non-contiguous outputs of ``DiffAugment``'s ``grid_sample``, so they use ``.reshape``
(the same operation); and their Siamese draws ``t[:] = t[0]``, which recent torch refuses when
``t`` has one row (ipc 1), become ``t[:] = t[0].clone()`` (what older torch did) in the
source of ``utils.py`` as it is loaded. The loop body is their main_DM.py (ConvNet branch) and main.py (at
ipc 1: one matching step, no inner training) around those functions. Each contender runs
in its own process (its peak memory is its own: growth of ``VmHWM`` after a reset, or of
``ru_maxrss``), on the first 256 MNIST training images of each class (so a batch of 256
real images per class is the same set in both, in another order), with the same initial
weights at every iteration (a distillkit ConvNet-3's state dict, loaded into theirs: the
same layers under the same names). Times are one iteration, DM with Siamese augmentation
``color_crop_cutout_scale_rotate`` (the digits strategy; each code its own random draws),
DC without (its paper's DC setting), interleaved,
after one warm-up pair. Agreement: one step without augmentation from the same initial
images: the two losses and the relative difference of the image updates (for DM with
``lr_img = 1`` and momentum from zero, the update is the image gradient).

k-center greedy and herding (``--deepcore-dir PATH``): github.com/PatrickZH/DeepCore is not a
package either; fetch it the same way. Its ``deepcore/__init__`` imports torchvision and every
method, so only two source files are executed (``methods/kcentergreedy.py``,
``methods/herding.py``), with their relative imports replaced by DeepCore's own
``euclidean_dist`` and an empty stand-in for the training class ``EarlyTrain``, which neither
selection reads, and their ``np.in1d`` (removed in NumPy 2.4) is ``np.isin``. Input: 10,000 standard-normal features of dimension 512, global selection of
1,000 points. k-center: DeepCore starts from ours's first (random) point, handed over as
``already_selected``, so the picks must agree; herding: see the row.

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
    python benchmarks/peers.py --skip omp nnomp facility deepcore --peer-dir /tmp/dcpeer   # DM and DC only
    python benchmarks/peers.py --skip omp nnomp facility dm dc --deepcore-dir /tmp/deepcore
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
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


class _NumpyWithIn1d:
    def __getattr__(self, name):
        import numpy as np

        return np.isin if name == "in1d" else getattr(np, name)


def _deepcore_functions(root: str):
    """DeepCore's k-center greedy and herding, loaded from a checkout without importing its
    package (whose ``__init__`` imports torchvision and every method): the two source files are
    executed with their relative imports replaced by DeepCore's own ``euclidean_dist`` and an
    empty stand-in for the model-training base class ``EarlyTrain`` (neither selection uses it)."""
    import types

    methods = os.path.join(root, "deepcore", "methods")
    ns: dict = {}
    with open(os.path.join(methods, "methods_utils", "euclidean.py")) as fh:
        exec(compile(fh.read(), "deepcore/methods/methods_utils/euclidean.py", "exec"), ns)
    out = {}
    for name in ("kcentergreedy", "herding"):
        with open(os.path.join(methods, f"{name}.py")) as fh:
            src = "\n".join(line for line in fh.read().splitlines() if not line.startswith("from ."))
        mod = {"EarlyTrain": object, "euclidean_dist": ns["euclidean_dist"], "MyDataParallel": type(None)}
        exec(compile(src, f"deepcore/methods/{name}.py", "exec"), mod)
        mod["np"] = _NumpyWithIn1d()  # their np.in1d was removed in NumPy 2.4: np.isin is the same test
        out[name] = mod
    # Herding.herding is a method reading self.metric and self.args.print_freq only
    herder = types.SimpleNamespace(metric=ns["euclidean_dist"], args=types.SimpleNamespace(print_freq=10**9))
    kcenter = out["kcentergreedy"]["k_center_greedy"]
    herding = out["herding"]["Herding"].herding
    return (lambda m, k, first: kcenter(m, k - 1, ns["euclidean_dist"], "cpu", already_selected=[first],
                                        print_freq=10**9),
            lambda m, k: herding(herder, m, k))


def deepcore_rows(args, n=10000, d=512, budget=1000):
    """k-center greedy and herding on the issue's input (n random features, no classes: global
    selection) against DeepCore. k-center: both start from the same first point (ours drawn
    from the generator, handed to DeepCore as ``already_selected``), so the picks must agree."""
    if not args.deepcore_dir:
        why = ("DeepCore not given: --deepcore-dir PATH to a checkout of github.com/PatrickZH/DeepCore (a "
               "research repository, not a PyPI library; its package imports torchvision)")
        return [_skip("k-center greedy", why), _skip("herding", why)]
    import numpy as np
    import torch
    from coreset_speed import make_data

    from distillkit.coresets import herding, k_center_greedy

    if args.quick:
        n, d, budget = 2000, 64, 100
    dc_kcenter, dc_herding = _deepcore_functions(args.deepcore_dir)
    f, y = make_data(n, d, "cpu")
    f_dev = f.to(args.device)
    rows = []
    first = int(k_center_greedy(f_dev, y, 1, per_class=False, features=f_dev, generator=0).indices[0])
    with contextlib.redirect_stdout(io.StringIO()):  # DeepCore prints progress
        t_o, t_p, ours, ref = interleaved(
            lambda: k_center_greedy(f_dev, y, budget, per_class=False, features=f_dev, generator=0),
            lambda: dc_kcenter(f, budget, first), args.pairs, args.device)
    same = set(ours.indices.tolist()) == set(np.asarray(ref).tolist())
    rows.append(_row(f"k-center greedy, n = {n:,}, d = {d}, budget {budget:,}", t_o, t_p, "DeepCore",
                     f"{'same' if same else 'different'} picks from the same first point "
                     f"({len(set(ours.indices.tolist()) & set(np.asarray(ref).tolist()))}/{budget} shared)"))
    print(rows[-1], flush=True)
    with contextlib.redirect_stdout(io.StringIO()):
        t_o, t_p, ours, ref = interleaved(
            lambda: herding(f_dev, y, budget, per_class=False, features=f_dev),
            lambda: dc_herding(f, budget), args.pairs, args.device)
    ref = np.asarray(ref)
    shared = len(set(ours.indices.tolist()) & set(ref.tolist()))
    mu = f.mean(0)
    err = {name: float(torch.linalg.vector_norm(f[torch.as_tensor(idx)].mean(0) - mu))
           for name, idx in (("ours", ours.indices.cpu().numpy()), ("theirs", ref))}
    rows.append(_row("herding, same features", t_o, t_p, "DeepCore",
                     f"different by design: DeepCore takes the argmax of the distance to the herding target "
                     f"(deepcore/methods/herding.py), ours the argmin (iCaRL); {shared}/{budget} shared; "
                     f"|mean(S) - mean| ours {err['ours']:.4f}, DeepCore {err['theirs']:.4f}"))
    print(rows[-1], flush=True)
    return rows


# ----------------------------------------------------------------------------- DM and DC against the authors' loops
# the digits strategy (no flip: the reference README for MNIST); their rand_flip also fails under recent torch
# (it writes randf[0] into randf, overlapping memory)
DSA_STRATEGY = "color_crop_cutout_scale_rotate"


def _kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _mnist_pool(per_class: int):
    """The first ``per_class`` MNIST training images of each class, normalised as both codes do."""
    import torch

    from distillkit.data import load_mnist

    x, y = load_mnist(split="train", download=False, progress=False)
    keep = torch.cat([torch.nonzero(y == c).squeeze(1)[:per_class] for c in range(10)])
    return ((x[keep] - 0.1307) / 0.3081).contiguous(), y[keep].contiguous()


def _weights(width: int, seed: int):
    """The initial weights of iteration ``seed``: a distillkit ConvNet-3 (the authors' ConvNet has the same
    layers under the same names: conv, GroupNorm(width, width), ReLU, AvgPool, x 3; then the classifier)."""
    from distillkit.models import ConvNet

    return ConvNet(1, 10, im_size=28, width=width, generator=seed).state_dict()


class _Ours:
    """distillkit's ``dm`` / ``dc``, one step per call, on the pool, with the given initial weights."""

    def __init__(self, cfg):
        import distillkit.distill  # noqa: F401  (registers the methods)
        from distillkit.models import ConvNet

        self.cfg, self.convnet = cfg, ConvNet
        self.x, self.y = _mnist_pool(cfg["batch_real"])

    def step(self, sd, seed, dsa):
        import sys as _sys

        cfg = self.cfg
        net = self.convnet(1, 10, im_size=28, width=cfg["width"])
        net.load_state_dict(sd)
        model_fn = lambda generator=None: net  # noqa: E731  (the given weights, whatever the seed)
        if cfg["method"] == "dm":
            fn = _sys.modules["distillkit.distill.dm"].dm
            opts = dict(lr_img=1.0, init="real", dsa=dsa, dsa_strategy=DSA_STRATEGY)
        else:
            fn = _sys.modules["distillkit.distill.dc"].dc
            opts = dict(lr_img=0.1, lr_net=0.01, init="real", dsa=False, outer_loop=1, inner_loop=1)
        s = fn(self.x, self.y, cfg["ipc"], model_fn=model_fn, steps=1, batch_real=cfg["batch_real"],
               generator=seed, **opts)
        return float(s.info["losses"][0]), s.history[0][1], s.x


class _Authors:
    """The authors' loop (main_DM.py lines 139-194, ConvNet branch; main.py lines 147-207 at ipc 1, where
    outer_loop = inner_loop = 1 and the loop breaks before the inner training), calling their
    ``utils.get_network``, ``DiffAugment``, ``ParamDiffAug`` and ``match_loss`` from ``peer_dir``."""

    def __init__(self, cfg):
        import types

        import numpy as np
        import torch

        # their utils.py imports torchvision (for its dataset loaders, unused here); no CPU torchvision is
        # installed, so only that import is stubbed, in this process only
        if "torchvision" not in sys.modules:
            tv = types.ModuleType("torchvision")
            tv.datasets, tv.transforms = types.SimpleNamespace(), types.SimpleNamespace()
            sys.modules["torchvision"] = tv
        sys.path.insert(0, cfg["peer_dir"])
        import networks

        # their DiffAugment makes Siamese draws with ``t[:] = t[0]``, which recent torch refuses when t has one
        # row (the synthetic batch at ipc 1: source and destination are one memory location); older torch
        # copied t[0] first, so that is what the patched line does: ``t[:] = t[0].clone()``
        path = os.path.join(cfg["peer_dir"], "utils.py")
        with open(path) as fh:
            source = re.sub(r"(\w+)\[:\] = \1\[0\]$", r"\1[:] = \1[0].clone()", fh.read(), flags=re.M)
        utils = types.ModuleType("utils")
        utils.__file__ = path
        sys.modules["utils"] = utils
        exec(compile(source, path, "exec"), utils.__dict__)

        # networks.ConvNet.embed / forward use .view, which fails on the non-contiguous outputs that
        # DiffAugment's grid_sample gives under recent torch; .reshape is the same operation
        def embed(self, x):
            out = self.features(x)
            return out.reshape(out.size(0), -1)

        def forward(self, x):
            return self.classifier(embed(self, x))

        networks.ConvNet.embed, networks.ConvNet.forward = embed, forward
        self.cfg, self.np, self.torch, self.utils, self.networks = cfg, np, torch, utils, networks
        x, y = _mnist_pool(cfg["batch_real"])
        self.images_all = x
        self.indices_class = [np.flatnonzero(y.numpy() == c).tolist() for c in range(10)]
        self.dsa_param = utils.ParamDiffAug()
        self.args = types.SimpleNamespace(device="cpu", dis_metric="ours")

    def get_images(self, c, n):  # main_DM.py / main.py
        return self.images_all[self.np.random.permutation(self.indices_class[c])[:n]]

    def step(self, sd, seed, dsa, image_init):
        torch, utils, cfg = self.torch, self.utils, self.cfg
        ipc, channel, im_size, num_classes = cfg["ipc"], 1, (28, 28), 10
        self.np.random.seed(seed)
        image_syn = image_init.detach().clone().requires_grad_(True)
        if cfg["width"] == 128:  # their default ConvNet
            net = utils.get_network("ConvNet", channel, num_classes, im_size)
        else:  # the same with another width (a smoke run)
            net = self.networks.ConvNet(channel, num_classes, cfg["width"], 3, "relu", "instancenorm", "avgpooling",
                                        im_size)
        net.load_state_dict(sd)
        net.train()
        if cfg["method"] == "dm":
            optimizer_img = torch.optim.SGD([image_syn], lr=1.0, momentum=0.5)
            for param in list(net.parameters()):
                param.requires_grad = False
            embed = net.embed
            loss = torch.tensor(0.0)
            for c in range(num_classes):
                img_real = self.get_images(c, cfg["batch_real"])
                img_syn = image_syn[c * ipc:(c + 1) * ipc].reshape((ipc, channel, im_size[0], im_size[1]))
                if dsa:
                    seed = int(time.time() * 1000) % 100000
                    img_real = utils.DiffAugment(img_real, DSA_STRATEGY, seed=seed, param=self.dsa_param)
                    img_syn = utils.DiffAugment(img_syn, DSA_STRATEGY, seed=seed, param=self.dsa_param)
                output_real = embed(img_real).detach()
                output_syn = embed(img_syn)
                loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
        else:
            optimizer_img = torch.optim.SGD([image_syn], lr=0.1, momentum=0.5)
            net_parameters = list(net.parameters())
            criterion = torch.nn.CrossEntropyLoss()
            loss = torch.tensor(0.0)
            for c in range(num_classes):
                img_real = self.get_images(c, cfg["batch_real"])
                lab_real = torch.ones((img_real.shape[0],), dtype=torch.long) * c
                img_syn = image_syn[c * ipc:(c + 1) * ipc].reshape((ipc, channel, im_size[0], im_size[1]))
                lab_syn = torch.ones((ipc,), dtype=torch.long) * c
                output_real = net(img_real)
                loss_real = criterion(output_real, lab_real)
                gw_real = torch.autograd.grad(loss_real, net_parameters)
                gw_real = list((_.detach().clone() for _ in gw_real))
                output_syn = net(img_syn)
                loss_syn = criterion(output_syn, lab_syn)
                gw_syn = torch.autograd.grad(loss_syn, net_parameters, create_graph=True)
                loss += utils.match_loss(gw_syn, gw_real, self.args)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        return float(loss.item()), image_syn.detach()


def _distill_worker(conn, who, cfg):
    """One contender in its own process: setup, then ("iter", seed) -> seconds, ("agree", seed, init) ->
    (loss, images), ("peak",) -> resident-set growth in MiB since the end of setup."""
    import torch

    torch.set_num_threads(cfg["threads"])
    impl = _Ours(cfg) if who == "ours" else _Authors(cfg)
    try:
        with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current resident set
            fh.write("5")
        base, how = _kib("VmRSS"), "VmHWM"
    except OSError:
        import resource

        base, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg[0] == "iter":
            sd = _weights(cfg["width"], msg[1])
            init = msg[2]
            start = time.perf_counter()
            if who == "ours":
                impl.step(sd, msg[1], cfg["dsa"])
            else:
                impl.step(sd, msg[1], cfg["dsa"], init)
            conn.send(time.perf_counter() - start)
        elif msg[0] == "agree":  # one step without augmentation, from the given initial images
            sd = _weights(cfg["width"], msg[1])
            if who == "ours":
                loss, init, images = impl.step(sd, msg[1], False)
                conn.send((loss, init, images))
            else:
                loss, images = impl.step(sd, msg[1], False, msg[2])
                conn.send((loss, images))
        elif msg[0] == "peak":
            if how == "VmHWM":
                conn.send((_kib("VmHWM") - base) / 1024)
            else:
                import resource

                conn.send((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
        else:
            conn.close()
            return


def _recv(conn, proc, timeout=900.0):
    """The worker's next answer; an error if it died (its traceback is on stderr) or stays silent."""
    deadline = time.monotonic() + timeout
    while not conn.poll(1.0):
        if not proc.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"worker exited with code {proc.exitcode}" if not proc.is_alive() else "worker timed out")
    return conn.recv()


def distill_rows(args, sizes):
    """DM and DC: distillkit's step against the authors' loop, each in its own process (so that its peak
    memory is its own), driven A B A B on the same pool, the same initial weights each iteration and, for the
    agreement, the same initial images."""
    import multiprocessing as mp

    import torch

    names = [f"one {m.upper()} iteration, ConvNet-3 width {w}, {b} real / class, ipc {i}" for m, i, w, b in sizes]
    if not args.peer_dir:
        why = ("the authors' code not given: --peer-dir PATH to a checkout of github.com/VICO-UoE/"
               "DatasetCondensation (git archive HEAD | tar -x -C PATH)")
        return [_skip(n, why) for n in names]
    if not os.path.exists(os.path.join(args.peer_dir, "utils.py")):
        return [_skip(n, f"no utils.py in --peer-dir {args.peer_dir}") for n in names]
    try:
        _mnist_pool(1)
    except Exception as exc:  # noqa: BLE001 - any missing-data error
        return [_skip(n, f"MNIST not found ({type(exc).__name__}); set DISTILLKIT_DATA") for n in names]
    ctx = mp.get_context("spawn")
    rows = []
    for name, (method, ipc, width, batch_real) in zip(names, sizes):
        cfg = dict(method=method, ipc=ipc, width=width, batch_real=batch_real, threads=args.threads,
                   peer_dir=os.path.abspath(args.peer_dir), dsa=method == "dm")
        procs, conns = {}, {}
        for who in ("ours", "authors"):
            parent, child = ctx.Pipe()
            procs[who] = ctx.Process(target=_distill_worker, args=(child, who, cfg), daemon=True)
            procs[who].start()
            conns[who] = parent
        try:
            rows.append(_distill_row(name, cfg, procs, conns, args.pairs))
        except RuntimeError as exc:
            rows.append(_skip(name, f"failed: {exc}"))
        finally:
            for who in procs:
                if procs[who].is_alive():
                    procs[who].kill()
        print(rows[-1], flush=True)
    return rows


def _distill_row(name, cfg, procs, conns, pairs):
    import torch

    for who in conns:
        assert _recv(conns[who], procs[who]) == "ready"
    # agreement first (it also gives distillkit's initial images, which the authors' loop then starts from)
    conns["ours"].send(("agree", 7, None))
    loss_o, init, img_o = _recv(conns["ours"], procs["ours"])
    conns["authors"].send(("agree", 7, init))
    loss_a, img_a = _recv(conns["authors"], procs["authors"])
    step_o, step_a = img_o - init, img_a - init
    grad_diff = float(torch.linalg.vector_norm(step_o - step_a) / torch.linalg.vector_norm(step_a))
    t_o, t_a = [], []
    for k in range(pairs + 1):  # the first pair is a warm-up
        for who, ts in (("ours", t_o), ("authors", t_a)):
            conns[who].send(("iter", 100 + k, init))
            ts.append(_recv(conns[who], procs[who]))
    peaks = {}
    for who in conns:
        conns[who].send(("peak",))
        peaks[who] = _recv(conns[who], procs[who])
        conns[who].send(("stop",))
        procs[who].join(timeout=60)
    med_o, med_a = statistics.median(t_o[1:]), statistics.median(t_a[1:])
    aug = "with DSA (each its own draws)" if cfg["dsa"] else "no augmentation"
    agree = (f"peak {peaks['ours']:.0f} vs {peaks['authors']:.0f} MiB; timed {aug}; one step without "
             f"augmentation from the same images and weights: loss {loss_o:.6g} vs {loss_a:.6g} "
             f"(rel. diff {abs(loss_o - loss_a) / abs(loss_a):.1e}), image step rel. diff {grad_diff:.1e}")
    return _row(name, med_o, med_a, "authors' loop", agree)


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
    parser.add_argument("--skip", nargs="*", default=[], choices=["omp", "nnomp", "facility", "deepcore", "dm", "dc"])
    parser.add_argument("--dm-ipcs", type=int, nargs="*", default=[1, 10], help="ipcs of the DM rows (default 1 10)")
    parser.add_argument("--deepcore-dir", default=None, help="a checkout of github.com/PatrickZH/DeepCore (the "
                        "k-center greedy and herding rows; skipped without it)")
    parser.add_argument("--peer-dir", default=None, help="a checkout of github.com/VICO-UoE/DatasetCondensation "
                        "(the DM and DC rows; skipped without it)")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy, torch and numba start their pools
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.quick:
        d, n, ks, fl = 300, 2000, (20, 100), ((1000, 100), (2000, 200))
        dd = [("dm", 1, 16, 32), ("dc", 1, 16, 32)]  # (method, ipc, width, real images per class)
    else:
        d, n, ks, fl = 1290, 10000, (100, 500), ((5000, 500), (10000, 1000))
        dd = [("dm", ipc, 128, 256) for ipc in args.dm_ipcs] + [("dc", 1, 128, 256)]
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
    dd = [s for s in dd if s[0] not in args.skip]
    if dd:
        rows += distill_rows(args, dd)
    print("\n" + "\n".join(rows))
    if source:
        print(f"\nFacility-location input: {source}.")


if __name__ == "__main__":
    main()
