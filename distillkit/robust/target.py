"""A robust real-side target for gradient matching (DC, DSA) and distribution matching (DM).

Vahidian et al. (ICLR 2025) group the real examples of a class into the Voronoi cells of the
synthetic points (in the embedding of the matching network) and penalise a risk of the loss,
``mean_j CVaR_alpha(G_j) + max_j CVaR_alpha(G_j)``. :class:`GroupCVaRTarget` implements this
as a plug-in for :func:`distillkit.distill.distill` (``robust=``):

* DC / DSA call ``gradient_loss(net, x_real, y_real, x_syn, y_syn)``: the real-side loss whose
  parameter gradient is the matching target. Plain matching uses the mean cross-entropy;
  here it is the group risk of the per-example cross-entropies, so its gradient is the
  gradient of the real data reweighted towards the worst examples of every subgroup and
  towards the worst subgroup.
* DM calls ``feature_target(f_real, f_syn)``: the real-side mean embedding. Plain DM uses the
  mean; here (our proposal, the paper has no DM variant that we could check) it is the mean
  under the same worst-case reweighting, with the distance of every real example to its
  nearest synthetic point as the "loss" (how badly the synthetic set covers it).

``mode="as_released"`` reproduces the published code: the group risk is computed, with that
code's lower-tail "CVaR", on a NumPy copy of the losses, so it is a constant and the gradient is
exactly that of the mean cross-entropy (:func:`released_cvar`, :func:`released_group_risk`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._validation import check_bool, check_float, check_generator, check_int, check_option, fail
from .cvar import _group_weights
from .groups import _check_features, _check_labels, _kmeans_plusplus, _lloyd, _sq_dist, voronoi_groups

__all__ = ["GroupCVaRTarget", "released_cvar", "released_group_risk"]


def released_cvar(losses, alpha: float) -> float:
    """The per-cluster "CVaR" of the released code (a lower-tail average), for comparison.

    The row of losses is sorted ascending, ``k = max(1, int(alpha * len))`` and the value is
    ``(mean of the non-zero entries among the k smallest + s_k * (alpha - k / len)) / alpha``.
    For the losses 1..10 and ``alpha=0.8`` it gives 5.625, where the upper-tail CVaR of
    :func:`~distillkit.robust.cvar.cvar` gives 9.5.

    Parameters
    ----------
    losses : array-like of shape (n,)
        One row of losses (zeros count in the length but not in the mean, as in the code).
    alpha : float
        The code's level in (0, 1].

    Returns
    -------
    float

    References
    ----------
    github.com/Mming11/RobustDatasetDistillation, ``utils.py``, function ``cvar_loss``
    (re-implemented from its description, not copied).

    Examples
    --------
    >>> released_cvar(np.arange(1.0, 11.0), 0.8)
    5.625
    """
    func = "released_cvar"
    alpha = check_float(alpha, "alpha", func, low=0.0, high=1.0, low_open=True)
    if isinstance(losses, torch.Tensor):
        losses = losses.detach().cpu().numpy()
    try:
        s = np.asarray(losses, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        fail(func, "losses", "an array-like of real numbers", losses, error=TypeError)
    if s.size == 0:
        fail(func, "losses", "a non-empty array", "<an empty array>")
    if not np.isfinite(s).all():
        fail(func, "losses", "finite (no NaN or infinite values)",
             f"<an array with {int((~np.isfinite(s)).sum())} NaN or infinite values>")
    s = np.sort(s)
    k = max(1, int(alpha * s.size))
    head = s[:k][s[:k] != 0]
    base = head.mean() if head.size else 0.0
    return float((base + s[k - 1] * (alpha - k / s.size)) / alpha)


def released_group_risk(losses, groups, alpha: float, n_groups: int | None = None) -> float:
    """The released code's group risk: ``nonzero_mean_j r_j + max_j r_j`` on zero-padded rows.

    Each group's losses are padded with zeros to the size of the largest group, and
    :func:`released_cvar` is taken per row; groups with no member (``n_groups`` larger than the
    ids present) give 0 and are left out of the mean, as in the code.

    Parameters
    ----------
    losses : array-like of shape (n,)
        Per-example losses.
    groups : array-like of shape (n,), integer ids in [0, n_groups)
        Group id of every example.
    alpha : float
        CVaR level in (0, 1), as in :func:`released_cvar`.
    n_groups : int, optional
        Number of rows (clusters); default ``max(groups) + 1``.

    Returns
    -------
    float
        A plain number: this risk has no gradient, which is the point of the comparison.

    Examples
    --------
    >>> released_group_risk(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]), 0.5)  # (2 + 6) / 2 + 6
    10.0
    """
    func = "released_group_risk"
    alpha = check_float(alpha, "alpha", func, low=0.0, high=1.0, low_open=True)
    losses = np.asarray(losses, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if losses.size == 0 or not np.isfinite(losses).all():
        fail(func, "losses", "a non-empty array of finite numbers", f"<an array of {losses.size} values>")
    if groups.shape != losses.shape or not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0:
        fail(func, "groups", f"non-negative integer ids, one per loss ({losses.size})",
             f"<an array of {groups.size} values of dtype {groups.dtype}>")
    groups = groups.astype(np.int64)
    n_groups = int(groups.max()) + 1 if n_groups is None else check_int(n_groups, "n_groups", func,
                                                                         low=int(groups.max()) + 1)
    rows = [losses[groups == j] for j in range(n_groups)]
    width = max(len(r) for r in rows)
    values = np.array([released_cvar(np.pad(r, (0, width - len(r))), alpha) for r in rows])
    nonzero = values[values != 0]
    return float((nonzero.mean() if nonzero.size else 0.0) + values.max())


class GroupCVaRTarget:
    """Group-CVaR risk on the real side of dataset distillation (``distill(..., robust=...)``).

    Parameters
    ----------
    alpha : float
        CVaR level in (0, 1), upper tail: every subgroup contributes the mean of its worst
        ``1 - alpha`` fraction. (The released code's ``alpha`` means the lower tail.)
    use_max : bool
        Add the worst subgroup's CVaR to the mean over subgroups.
    grouping : {"voronoi", "kmeans"}
        Subgroups as the cells of the synthetic points in the network's embedding (the paper),
        or k-means on the real embeddings with one cluster per synthetic point.
    pool_across_classes : bool
        Voronoi cells over all synthetic points given in one call (the released code). The
        distillation methods call the target one class at a time, where it changes nothing.
    mode : {"robust", "as_released"}
        ``"as_released"`` keeps the value of the released code's risk but not its gradient.
    embed : callable ``(net, x) -> Tensor (n, d)``, optional
        Embedding used for the subgroups; default ``net.embed``.
    feature_weighting : {"tail", "group"}
        DM only. ``"tail"``: the real mean under the risk's own weights (default, our
        proposal). ``"group"``: group means weighted by the groups' CVaR.
    generator : torch.Generator, int or None
        Seeds the k-means++ initialisation of ``grouping="kmeans"`` when a method is called
        without ``generator=``: its state is taken once and re-derived at every call, so the
        same inputs give the same subgroups and reusing a target reproduces a run. DC, DSA and
        DM pass their own generator, so ``distill(..., generator=0, robust=target)`` is
        reproducible whatever this seed.

    References
    ----------
    S. Vahidian, M. Wang, J. Gu, V. Kungurtsev, W. Jiang and Y. Chen, "Group Distributionally
    Robust Dataset Distillation with Risk Minimization", ICLR 2025.

    Examples
    --------
    >>> from distillkit.models import MLP
    >>> net = MLP(2, 2, hidden=(8,), generator=0)
    >>> target = GroupCVaRTarget(alpha=0.5)
    >>> x, y = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(6, dtype=torch.long)
    >>> target.gradient_loss(net, x, y, x[:2], y[:2]).shape
    torch.Size([])
    """

    def __init__(self, alpha: float = 0.8, *, use_max: bool = True, grouping: str = "voronoi",
                 pool_across_classes: bool = False, mode: str = "robust",
                 embed: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                 feature_weighting: str = "tail", generator=None):
        func = "GroupCVaRTarget"
        self.alpha = check_float(alpha, "alpha", func, low=0.0, high=1.0, low_open=True, high_open=True)
        self.use_max = check_bool(use_max, "use_max", func)
        self.grouping = check_option(grouping, "grouping", func, ("voronoi", "kmeans"))
        self.pool_across_classes = check_bool(pool_across_classes, "pool_across_classes", func)
        self.mode = check_option(mode, "mode", func, ("robust", "as_released"))
        if embed is not None and not callable(embed):
            fail(func, "embed", "a callable (net, x) -> features, or None", embed, error=TypeError)
        self.embed = embed
        self.feature_weighting = check_option(feature_weighting, "feature_weighting", func, ("tail", "group"))
        # The k-means draws are re-derived per call from this state, so a target gives the same
        # subgroups every time it sees the same data (and reusing one target reproduces a run);
        # the distillation methods pass their own generator instead (distill(..., generator=...)).
        self.generator = check_generator(generator, func)
        self._generator_state = self.generator.get_state()

    def __repr__(self) -> str:
        return (f"GroupCVaRTarget(alpha={self.alpha}, use_max={self.use_max}, grouping={self.grouping!r}, "
                f"mode={self.mode!r})")

    # -- subgroups -----------------------------------------------------------------------
    def _call_generator(self, generator, func: str) -> torch.Generator | None:
        """The generator of one call: the caller's, else a fresh copy of the stored state."""
        if self.grouping != "kmeans":
            return None
        if generator is not None:
            return check_generator(generator, func)
        gen = torch.Generator()
        gen.set_state(self._generator_state)
        return gen

    def _assign(self, f_real, f_syn, y_real=None, y_syn=None, gen=None, func="GroupCVaRTarget") -> torch.Tensor:
        if self.grouping == "voronoi":
            return voronoi_groups(f_real, f_syn, y_real, y_syn, pool_across_classes=self.pool_across_classes)
        ids = torch.empty(f_real.shape[0], dtype=torch.int64, device=f_real.device)
        classes = [None] if (y_real is None or self.pool_across_classes) else y_real.unique().tolist()
        offset = 0
        for c in classes:
            if c is None:
                rows = torch.arange(f_real.shape[0], device=f_real.device)
            else:
                rows = (y_real == c).nonzero().squeeze(1)
            k = f_syn.shape[0] if c is None else int((y_syn == c).sum())
            if k < 1 or k > rows.numel():
                fail(func, "x_syn", f"between 1 and {rows.numel()} synthetic points per class for "
                     f"grouping='kmeans'", f"<{k} synthetic points of class {c}>")
            labels, _ = _lloyd(f_real[rows], _kmeans_plusplus(f_real[rows], k, gen), 100)
            ids[rows] = labels + offset
            offset += k
        return ids

    def groups(self, net: nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, x_syn: torch.Tensor,
               y_syn: torch.Tensor, *, generator=None) -> torch.Tensor:
        """Subgroup id of every real example, shape (n,), from the embedding of ``net``.

        ``generator`` (torch.Generator, int or None) drives the k-means++ seeding of
        ``grouping="kmeans"``; None re-uses the target's own seed, so equal inputs give equal groups.
        """
        func = "GroupCVaRTarget.groups"
        x_real, y_real, x_syn, y_syn = self._check(net, x_real, y_real, x_syn, y_syn, func)
        return self._groups(net, x_real, y_real, x_syn, y_syn, self._call_generator(generator, func), func)

    @torch.no_grad()
    def _groups(self, net, x_real, y_real, x_syn, y_syn, gen, func):
        embed = self.embed or (lambda model, x: model.embed(x))
        f_real = embed(net, x_real).flatten(1)  # (n, ...) -> (n, d)
        f_syn = embed(net, x_syn.detach()).flatten(1)  # (m, ...) -> (m, d)
        return self._assign(f_real, f_syn, y_real, y_syn, gen, func)

    # -- DC / DSA ------------------------------------------------------------------------
    def _check(self, net, x_real, y_real, x_syn, y_syn, func="GroupCVaRTarget.gradient_loss"):
        if not isinstance(net, nn.Module):
            fail(func, "net", "an nn.Module", net, error=TypeError)
        if self.embed is None and not callable(getattr(net, "embed", None)):
            fail(func, "net", "a network with an embed(x) method (or pass embed= to GroupCVaRTarget)", net,
                 error=TypeError)
        x_real = _check_features(x_real, "x_real", func, ndim=None)
        x_syn = _check_features(x_syn, "x_syn", func, ndim=None)
        if x_syn.shape[1:] != x_real.shape[1:]:
            fail(func, "x_syn", f"a tensor of shape (m, {', '.join(map(str, x_real.shape[1:]))}) like x_real", x_syn)
        for name, labels, x in (("y_real", y_real, x_real), ("y_syn", y_syn, x_syn)):
            labels = _check_labels(labels, name, func, x.shape[0])
            if labels.numel() and int(labels.min()) < 0:
                fail(func, name, "non-negative class labels", f"<a minimum label of {int(labels.min())}>")
        if not self.pool_across_classes:
            missing = sorted(set(y_real.unique().tolist()) - set(y_syn.unique().tolist()))
            if missing:
                fail(func, "y_syn", "a synthetic point for every class of y_real",
                     f"<no synthetic point of class {missing[0]}>")
        return x_real, y_real, x_syn, y_syn

    def gradient_loss(self, net: nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, x_syn: torch.Tensor,
                      y_syn: torch.Tensor, *, generator=None) -> torch.Tensor:
        """The real-side loss whose parameter gradient is the matching target.

        Parameters
        ----------
        net : nn.Module
            The matching network (with ``embed`` unless ``embed=`` was given).
        x_real : Tensor of shape (n, ...)
            Real examples (one class in DC/DSA, already augmented).
        y_real : Tensor of shape (n,), int64
        x_syn : Tensor of shape (m, ...)
            Synthetic examples of the same classes (only their embedding is used, no gradient).
        y_syn : Tensor of shape (m,), int64
        generator : torch.Generator, int or None
            Drives ``grouping="kmeans"`` (DC and DSA pass their own); None re-uses the
            target's seed, so equal inputs give equal subgroups.

        Returns
        -------
        Tensor of shape ()
            ``mean_j CVaR_alpha(G_j) + max_j CVaR_alpha(G_j)`` of the per-example cross-entropy
            over the subgroups ``G_j``. In ``mode="as_released"``: the released code's
            (constant) risk plus the mean cross-entropy, whose gradient is the mean's exactly.
        """
        func = "GroupCVaRTarget.gradient_loss"
        x_real, y_real, x_syn, y_syn = self._check(net, x_real, y_real, x_syn, y_syn, func)
        groups = self._groups(net, x_real, y_real, x_syn, y_syn, self._call_generator(generator, func), func)
        logits = net(x_real)
        if logits.dim() != 2 or int(y_real.max()) >= logits.shape[1]:
            fail(func, "y_real", f"labels the network can output (logits of shape {tuple(logits.shape)})",
                 f"<a maximum label of {int(y_real.max())}>")
        if self.mode == "as_released":
            mean = F.cross_entropy(logits, y_real)
            losses = F.cross_entropy(logits, y_real, reduction="none").detach().cpu().numpy()  # no gradient
            risk = released_group_risk(losses, groups.cpu().numpy(), self.alpha)
            risk = torch.tensor(risk, dtype=mean.dtype, device=mean.device)
            return (mean + (risk - mean)) + mean  # the released code's construction
        losses = F.cross_entropy(logits, y_real, reduction="none")
        return (_group_weights(losses, groups, self.alpha, self.use_max) * losses).sum()

    # -- DM --------------------------------------------------------------------------------
    def feature_target(self, f_real: torch.Tensor, f_syn: torch.Tensor, *, generator=None) -> torch.Tensor:
        """The real-side mean embedding of distribution matching, reweighted by the group risk.

        The per-example "loss" is the Euclidean distance of a real embedding to its nearest
        synthetic embedding. With ``feature_weighting="tail"`` the target is
        ``sum_i q_i f_i / sum_i q_i`` with ``q`` the weights of the group risk
        (:func:`~distillkit.robust.cvar.group_cvar_weights`); with ``"group"`` it is
        ``sum_j w_j mean(G_j)`` with ``w_j`` proportional to group ``j``'s contribution to the
        risk, ``CVaR_j / J`` (plus ``CVaR_j`` for the worst group when ``use_max``). If every
        distance is zero (ties everywhere), both give the unweighted mean of the group means.

        Parameters
        ----------
        f_real : Tensor of shape (n, d)
            Embeddings of the real examples of one class.
        f_syn : Tensor of shape (m, d)
            Embeddings of that class's synthetic examples (used without gradient).
        generator : torch.Generator, int or None
            Drives ``grouping="kmeans"`` (DM passes its own); None re-uses the target's seed.

        Returns
        -------
        Tensor of shape (d,)
            No gradient with respect to ``f_syn``. ``mode="as_released"`` returns the mean.
        """
        func = "GroupCVaRTarget.feature_target"
        f_real = _check_features(f_real, "f_real", func)
        f_syn = _check_features(f_syn, "f_syn", func)
        if f_syn.shape[1] != f_real.shape[1]:
            fail(func, "f_syn", f"a tensor with {f_real.shape[1]} columns like f_real", f_syn)
        gen = self._call_generator(generator, func)
        if self.mode == "as_released":
            return f_real.mean(0)
        with torch.no_grad():
            s = f_syn.detach().to(f_real.dtype)
            groups = self._assign(f_real, s, gen=gen, func=func)
            dist = _sq_dist(f_real, s).min(1).values.sqrt()  # (n,) coverage loss
            q = _group_weights(dist, groups, self.alpha, self.use_max)  # (n,), sums to 1 or 2
            if self.feature_weighting == "group":
                k = int(groups.max()) + 1
                contribution = torch.zeros(k, dtype=q.dtype, device=q.device).index_add_(0, groups, q * dist)
                if float(contribution.sum()) <= 0:  # every distance is zero: no group is worse
                    contribution = torch.zeros(k, dtype=q.dtype, device=q.device).index_add_(0, groups, q)
                size = torch.bincount(groups, minlength=k).to(q.dtype)
                q = (contribution / size.clamp_min(1))[groups]  # member of G_j: w_j / |G_j|
        return (q[:, None] * f_real).sum(0) / q.sum()
