"""Expert trajectories for Matching Training Trajectories: train, store, verify, load.

Cazenavette, Wang, Torralba, Efros & Zhu, "Dataset Distillation by Matching Training
Trajectories" (CVPR 2022) first train *experts* on the real data and save their parameters
after every epoch (the reference's ``buffer.py``); MTT then distils against those stored
trajectories (:func:`~distillkit.distill.mtt.mtt`). Training the experts is the expensive,
reusable part, so it lives here apart from the distillation loop.

Where we differ from the reference, on purpose: a buffer is one file holding the flat
parameters of every expert at every epoch, shape (n_experts, epochs + 1, n_params), with a
manifest of how it was made and a SHA-256 checksum that :func:`load_expert_trajectories`
verifies, instead of path conventions; its size is computed, and the disk checked, before
any training (:func:`expert_buffer_size`); float16 and bfloat16 storage halve it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_int, fail
from ._base import _build_model, _check_data, _new_net
from .unroll import _flat_params

__all__ = ["ExpertBuffer", "expert_buffer_size", "train_expert_trajectories", "load_expert_trajectories"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ExpertBuffer:
    """Expert trajectories: ``trajectories[e, t]`` are expert ``e``'s flat parameters after
    ``t`` epochs (``t = 0`` is the initialisation), shape (n_experts, epochs + 1, n_params).
    ``manifest`` records how they were made and their SHA-256 checksum.

    Parameters
    ----------
    trajectories : Tensor of shape (n_experts, epochs + 1, n_params)
        Every expert's flat parameters after each epoch.
    manifest : dict
        How the buffer was made and its SHA-256 checksum.
    """

    trajectories: torch.Tensor
    manifest: dict = field(default_factory=dict)

    @property
    def n_experts(self) -> int:
        return int(self.trajectories.shape[0])

    @property
    def epochs(self) -> int:
        return int(self.trajectories.shape[1]) - 1

    @property
    def n_params(self) -> int:
        return int(self.trajectories.shape[2])


def expert_buffer_size(model, n_experts: int, epochs: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of an expert buffer: ``n_experts * (epochs + 1) * n_params * bytes per number``.

    Parameters
    ----------
    model : int, nn.Module or callable
        The number of parameters, a network, or a ``model_fn(generator=...)``.
    n_experts, epochs : int
        Number of experts and epochs per expert.
    dtype : torch.dtype
        float32, float16 or bfloat16.

    Returns
    -------
    int

    Examples
    --------
    >>> from distillkit.models import ConvNet
    >>> round(expert_buffer_size(ConvNet(3, 10, im_size=32), 100, 50) / 2**30, 2)  # GiB, CIFAR-10 in the paper
    6.08
    """
    func = "expert_buffer_size"
    if isinstance(model, nn.Module):
        n_params = sum(p.numel() for p in model.parameters())
    elif callable(model):
        n_params = sum(p.numel() for p in model(generator=0).parameters())
    else:
        n_params = check_int(model, "model", func, low=1)
    n_experts = check_int(n_experts, "n_experts", func, low=1)
    epochs = check_int(epochs, "epochs", func, low=1)
    if dtype not in _DTYPES.values():
        fail(func, "dtype", "one of torch.float32, torch.float16, torch.bfloat16", dtype, error=TypeError)
    return n_experts * (epochs + 1) * n_params * torch.empty((), dtype=dtype).element_size()


def _sha256(t: torch.Tensor) -> str:
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # the tensor's bytes
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def _manifest_sha256(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys), without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def train_expert_trajectories(x: torch.Tensor, y: torch.Tensor, *, model_fn, n_experts: int, epochs: int,
                              lr: float = 0.01, momentum: float = 0.0, batch_size: int = 256, augment=None,
                              generator=None, path=None, overwrite: bool = False,
                              dtype: torch.dtype = torch.float32, progress: bool = False) -> ExpertBuffer:
    """Train ``n_experts`` networks on the real data with SGD (constant learning rate, no
    weight decay and by default no momentum, as the reference's ``buffer.py``) and keep their
    flat parameters at the start and after every epoch.

    The size is computed before training (:func:`expert_buffer_size`, in
    ``manifest["size_bytes"]``); with ``path`` the buffer is written there as one file
    (``torch.save`` of the manifest and the tensor) after checking the disk has room. The
    manifest carries two SHA-256 checksums, of the trajectories (``sha256``) and of the
    manifest itself (``manifest_sha256``), both verified by :func:`load_expert_trajectories`.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Real training inputs.
    y : Tensor of shape (n,), int64
        Labels of ``x``.
    model_fn : callable
        ``model_fn(generator=seed)`` builds one expert.
    n_experts, epochs : int
        The reference uses 100 experts of 50 epochs.
    lr, momentum, batch_size : float, float, int
        SGD learning rate, momentum (reference: 0) and minibatch size.
    augment : callable ``(x_batch, generator) -> x_batch``, optional
        For example ``distillkit.distill.augment.dsa_augment`` (the reference trains experts with DSA).
    generator : torch.Generator, int or None
        Source of every expert's initialisation, batch order and augmentation.
    path : str or os.PathLike, optional
        Written through a temporary file, then renamed, so an interrupted run leaves no
        partial buffer.
    overwrite : bool
        Replace an existing file at ``path``; by default an existing file is refused before
        any training.
    dtype : torch.dtype
        Storage precision: float32, float16 or bfloat16 (half the size).
    progress : bool
        Show a progress bar over the experts' epochs.

    Returns
    -------
    ExpertBuffer

    References
    ----------
    G. Cazenavette, T. Wang, A. Torralba, A. A. Efros, J.-Y. Zhu, "Dataset Distillation by
    Matching Training Trajectories", CVPR 2022.

    Examples
    --------
    >>> from distillkit.models import MLP
    >>> x, y = torch.randn(40, 5), torch.arange(40) % 2
    >>> buf = train_expert_trajectories(x, y, model_fn=lambda generator: MLP(5, 2, hidden=(4,), generator=generator),
    ...                                 n_experts=2, epochs=3, generator=0)
    >>> tuple(buf.trajectories.shape), buf.manifest["size_bytes"]
    ((2, 4, 34), 1088)
    """
    func = "train_expert_trajectories"
    x, y = _check_data(x, y, func, x_ndim=None)
    n_experts = check_int(n_experts, "n_experts", func, low=1)
    epochs = check_int(epochs, "epochs", func, low=1)
    lr = check_float(lr, "lr", func, low=0.0, low_open=True)
    momentum = check_float(momentum, "momentum", func, low=0.0, high=1.0, high_open=True)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    gen = check_generator(generator, func)
    progress = check_bool(progress, "progress", func)
    overwrite = check_bool(overwrite, "overwrite", func)
    if dtype not in _DTYPES.values():
        fail(func, "dtype", "one of torch.float32, torch.float16, torch.bfloat16", dtype, error=TypeError)
    if augment is not None and not callable(augment):
        fail(func, "augment", "a callable (x_batch, generator) -> x_batch or None", augment, error=TypeError)
    n_classes = int(y.max()) + 1
    model = _build_model(model_fn, x, n_classes, 0, func)
    size = expert_buffer_size(model, n_experts, epochs, dtype)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            fail(func, "path", "a str or os.PathLike", path, error=TypeError)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            fail(func, "path", "a file in an existing folder", str(path))
        if os.path.exists(path) and not overwrite:
            fail(func, "path", "a path where no file exists yet (or pass overwrite=True)",
                 f"<{str(path)!r}, an existing file>")
        free = shutil.disk_usage(folder).free
        if free < size:
            fail(func, "path", f"a location with at least {size} bytes free", f"<{free} bytes free>")

    from tqdm.auto import trange

    traj = torch.empty((n_experts, epochs + 1, sum(p.numel() for p in model.parameters())), dtype=dtype)
    for e in trange(n_experts, disable=not progress, desc="experts", leave=False):
        net = _new_net(model_fn, gen, x)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        traj[e, 0] = _flat_params(net).cpu()
        net.train()
        for epoch in range(1, epochs + 1):
            order = torch.randperm(x.shape[0], generator=gen).to(x.device)
            for start in range(0, x.shape[0], batch_size):
                idx = order[start:start + batch_size]
                xb = x[idx] if augment is None else augment(x[idx], gen)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(xb), y[idx]).backward()
                opt.step()
            traj[e, epoch] = _flat_params(net).cpu()
    manifest = dict(format="distillkit-experts-1", n_experts=n_experts, epochs=epochs, n_params=traj.shape[2],
                    dtype=str(dtype).replace("torch.", ""), lr=lr, batch_size=batch_size, momentum=momentum,
                    augment=None if augment is None else getattr(augment, "__name__", repr(augment)),
                    model=type(model).__name__, model_repr=repr(model),
                    param_shapes=[[k, list(p.shape)] for k, p in model.named_parameters()],
                    data_shape=list(x.shape), n_classes=n_classes, data_sha256=_sha256(x), size_bytes=size,
                    sha256=_sha256(traj))
    manifest["manifest_sha256"] = _manifest_sha256(manifest)
    if path is not None:
        part = f"{os.fspath(path)}.part"
        try:
            torch.save({"manifest": manifest, "trajectories": traj}, part)
            os.replace(part, path)
        finally:
            if os.path.exists(part):
                os.remove(part)
    return ExpertBuffer(traj, manifest)


def load_expert_trajectories(path) -> ExpertBuffer:
    """Load a buffer written by :func:`train_expert_trajectories` and verify its checksum.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`train_expert_trajectories`; its checksum is verified.

    Returns
    -------
    ExpertBuffer

    Examples
    --------
    >>> load_expert_trajectories("missing.pt")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: The 'path' parameter of load_expert_trajectories must be an existing file.
    """
    func = "load_expert_trajectories"
    if not isinstance(path, (str, os.PathLike)):
        fail(func, "path", "a str or os.PathLike", path, error=TypeError)
    if not os.path.isfile(path):
        fail(func, "path", "an existing file", str(path))
    name = str(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, damaged or not a torch file: say which file
        fail(func, "path", "a readable buffer written by train_expert_trajectories",
             f"<{name!r}, which cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})>")
    if not isinstance(blob, dict) or not isinstance(blob.get("manifest"), dict) \
            or not isinstance(blob.get("trajectories"), torch.Tensor):
        fail(func, "path", "a file written by train_expert_trajectories", name)
    manifest, traj = blob["manifest"], blob["trajectories"]
    if "manifest_sha256" not in manifest:
        fail(func, "path", "a buffer whose manifest carries its own SHA-256 (manifest_sha256)",
             f"<{name!r}, without one (written by an older distillkit, or damaged): train the experts again>")
    try:
        manifest_digest = _manifest_sha256(manifest)
    except (TypeError, ValueError):
        manifest_digest = None
    if manifest_digest != manifest["manifest_sha256"]:
        fail(func, "path", f"a buffer whose manifest matches its SHA-256 ({manifest['manifest_sha256']})",
             f"<{name!r}, whose manifest has SHA-256 {manifest_digest}: the file is corrupted or was modified>")
    digest = _sha256(traj)
    if digest != manifest.get("sha256"):
        fail(func, "path", f"a buffer whose SHA-256 matches its manifest ({manifest.get('sha256')})",
             f"<{name!r} with SHA-256 {digest}: the file is corrupted or was modified>")
    shape = (manifest.get("n_experts"), manifest.get("epochs", -2) + 1, manifest.get("n_params"))
    if tuple(traj.shape) != shape or str(traj.dtype).replace("torch.", "") != manifest.get("dtype"):
        fail(func, "path", f"a buffer whose trajectories have the manifest's shape {shape} and dtype "
             f"{manifest.get('dtype')}", f"<{name!r} with trajectories of shape {tuple(traj.shape)} and {traj.dtype}>")
    return ExpertBuffer(traj, manifest)
