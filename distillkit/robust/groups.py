"""Subgroups of the real data, and accuracy measured per subgroup.

Two ways to form subgroups without labels for them:

* :func:`voronoi_groups`: each real example joins the cell of its nearest synthetic point in an
  embedding (per class by default). This is how the released code of Vahidian et al. (ICLR
  2025) forms its clusters, there pooled across classes (``pool_across_classes=True``).
* :func:`kmeans_groups`: Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii, 2007)
  on real features, every random choice from ``generator``.

For evaluation, :func:`group_accuracy` reports the accuracy of a model on every subgroup and the
worst of them; :func:`pixel_clusters` builds the 10 k-means clusters of the test inputs on which
the paper's test harness reports its "worst-cluster" accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_generator, check_int, check_tensor, check_xy, fail

__all__ = ["voronoi_groups", "kmeans_groups", "pixel_clusters", "group_accuracy", "GroupAccuracy"]


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, d), (k, d) -> (n, k), without the matmul shortcut."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()


def _check_features(x, param: str, func: str, *, ndim=2, min_rows: int = 1) -> torch.Tensor:
    """Float32/float64 features with data (not meta), finite, of the given dims."""
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    if isinstance(x, torch.Tensor) and x.dim() < 1:
        fail(func, param, "a tensor of shape (n, ...) with one row per example", x)
    x = check_tensor(x, param, func, ndim=ndim, floating=True, min_rows=min_rows)
    if x.dtype not in (torch.float32, torch.float64):
        fail(func, param, "a float32 or float64 tensor (distances in half precision are not reliable)", x,
             error=TypeError)
    return x


def _check_labels(labels, param: str, func: str, n: int) -> torch.Tensor:
    if isinstance(labels, torch.Tensor) and labels.device.type == "meta":
        fail(func, param, "a tensor with data (not on the meta device)",
             f"<a meta tensor of shape {tuple(labels.shape)}>")
    labels = check_tensor(labels, param, func, ndim=1, floating=False)
    if labels.dtype != torch.int64:
        fail(func, param, "an int64 tensor", labels, error=TypeError)
    if labels.shape[0] != n:
        fail(func, param, f"a tensor with one entry per row ({n} rows)", labels)
    return labels


def voronoi_groups(f_real: torch.Tensor, f_syn: torch.Tensor, y_real: torch.Tensor | None = None,
                   y_syn: torch.Tensor | None = None, *, pool_across_classes: bool = False) -> torch.Tensor:
    """Assign every real example to its nearest synthetic point (its Voronoi cell).

    Parameters
    ----------
    f_real : Tensor of shape (n, d)
        Embeddings of the real examples.
    f_syn : Tensor of shape (m, d)
        Embeddings of the synthetic points.
    y_real, y_syn : Tensor of shape (n,) and (m,), int64, optional
        Labels. When given (and ``pool_across_classes=False``) a real example of class ``c``
        only looks at the synthetic points of class ``c``; every class of ``y_real`` must then
        have a synthetic point. Without labels every synthetic point is a candidate.
    pool_across_classes : bool
        Ignore the labels and search all synthetic points, as the released code does.

    Returns
    -------
    Tensor of shape (n,), int64
        Row index into ``f_syn`` of each real example's nearest synthetic point (Euclidean
        distance; ties go to the lower index). Synthetic points that no real example chose
        simply do not appear: empty cells are allowed here and skipped by the risk.

    References
    ----------
    S. Vahidian, M. Wang, J. Gu, V. Kungurtsev, W. Jiang and Y. Chen, "Group Distributionally
    Robust Dataset Distillation with Risk Minimization", ICLR 2025.

    Examples
    --------
    >>> f_real = torch.tensor([[0.0, 0.0], [0.9, 0.0], [5.0, 5.0]])
    >>> voronoi_groups(f_real, torch.tensor([[0.0, 0.1], [1.0, 0.0], [5.0, 4.0]]))
    tensor([0, 1, 2])
    """
    func = "voronoi_groups"
    f_real = _check_features(f_real, "f_real", func)
    f_syn = _check_features(f_syn, "f_syn", func)
    if f_syn.shape[1] != f_real.shape[1]:
        fail(func, "f_syn", f"a tensor with {f_real.shape[1]} columns like f_real", f_syn)
    if not isinstance(pool_across_classes, bool):
        fail(func, "pool_across_classes", "a bool", pool_across_classes, error=TypeError)
    if (y_real is None) != (y_syn is None):
        missing = "y_syn" if y_syn is None else "y_real"
        fail(func, missing, "given together with the other label tensor", None, error=TypeError)
    dist = _sq_dist(f_real, f_syn.to(f_real.dtype))  # (n, m)
    if y_real is None or pool_across_classes:
        return dist.argmin(1)
    y_real = _check_labels(y_real, "y_real", func, f_real.shape[0]).to(dist.device)
    y_syn = _check_labels(y_syn, "y_syn", func, f_syn.shape[0]).to(dist.device)
    missing = sorted(set(y_real.unique().tolist()) - set(y_syn.unique().tolist()))
    if missing:
        fail(func, "y_syn", "a synthetic point for every class of y_real",
             f"<no synthetic point of class {missing[0]}>")
    dist = dist.masked_fill(y_real[:, None] != y_syn[None, :], float("inf"))
    return dist.argmin(1)


def _kmeans_plusplus(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [x[first]]
    d2 = _sq_dist(x, x[first:first + 1]).squeeze(1)  # (n,)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            fail("kmeans_groups", "k", f"at most the number of distinct rows of features ({len(centers)})", k)
        pick = int(torch.multinomial((d2 / total).double().cpu(), 1, generator=gen))
        centers.append(x[pick])
        d2 = torch.minimum(d2, _sq_dist(x, x[pick:pick + 1]).squeeze(1))
    return torch.stack(centers)


def _lloyd(x: torch.Tensor, centers: torch.Tensor, n_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations until the assignment stops changing (or ``n_iter``).

    An empty cluster is moved onto the example farthest from its own centre (the scikit-learn
    rule), so the result always has ``k`` non-empty clusters when ``x`` has k distinct rows.
    """
    k = centers.shape[0]
    labels = None
    for _ in range(n_iter):
        d2 = _sq_dist(x, centers)  # (n, k)
        new = d2.argmin(1)
        counts = torch.bincount(new, minlength=k)
        if bool((counts == 0).any()):
            own = d2.gather(1, new[:, None]).squeeze(1)
            for j in (counts == 0).nonzero().flatten().tolist():
                far = int(own.argmax())
                new[far] = j
                own[far] = -1.0
            counts = torch.bincount(new, minlength=k)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        centers = sums / counts[:, None].to(x.dtype)
    return labels, centers


def kmeans_groups(features: torch.Tensor, k: int, *, generator=None, n_iter: int = 100
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means clustering of real features, seeded by k-means++ from ``generator``.

    Parameters
    ----------
    features : Tensor of shape (n, d)
        Points to cluster, one per row.
    k : int
        Number of clusters, in [1, n]. ``features`` must have at least ``k`` distinct rows.
    generator : torch.Generator, int or None
        Drives the k-means++ seeding (the only random choice).
    n_iter : int
        Maximum number of Lloyd iterations; it stops earlier once the assignment is stable.

    Returns
    -------
    labels : Tensor of shape (n,), int64
        Cluster of every row, in [0, k). No cluster is empty: a cluster that empties during
        Lloyd's iterations is re-seeded at the row farthest from its centre.
    centers : Tensor of shape (k, d)

    References
    ----------
    S. Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2), 1982.
    D. Arthur and S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    >>> labels, centers = kmeans_groups(x, 2, generator=0)
    >>> labels[0] == labels[1], labels[0] != labels[2]
    (tensor(True), tensor(True))
    """
    func = "kmeans_groups"
    features = _check_features(features, "features", func)
    k = check_int(k, "k", func, low=1, high=features.shape[0])
    n_iter = check_int(n_iter, "n_iter", func, low=1)
    gen = check_generator(generator, func)
    centers = _kmeans_plusplus(features, k, gen)
    return _lloyd(features, centers, n_iter)


def pixel_clusters(x: torch.Tensor, k: int = 10, *, generator=0) -> torch.Tensor:
    """k-means clusters of flattened inputs, the subgroups of the "worst-cluster" accuracy.

    Vahidian et al. report the minimum over 10 k-means clusters of the flattened test images;
    this is that clustering with :func:`kmeans_groups` (seeded, so reproducible).

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs, flattened before clustering.
    k : int
        Number of clusters.
    generator : torch.Generator, int or None
        Seed of the k-means initialisation (0 by default, so every chapter gets the same clusters).

    Returns
    -------
    Tensor of shape (n,), int64

    Examples
    --------
    >>> pixel_clusters(torch.tensor([[0.0], [0.2], [9.0]]), 2).tolist() in ([0, 0, 1], [1, 1, 0])
    True
    """
    x = _check_features(x, "x", "pixel_clusters", ndim=None)
    return kmeans_groups(x.reshape(x.shape[0], -1), k, generator=generator)[0]  # (n, ...) -> (n, D)


@dataclass(frozen=True)
class GroupAccuracy:
    """Accuracy of one model overall and on every subgroup.

    Attributes
    ----------
    average : float
        Accuracy over all examples.
    groups : tuple of int
        Subgroup ids present, sorted.
    accuracies, counts : tuple
        Accuracy and size of each subgroup.
    """

    average: float
    groups: tuple[int, ...]
    accuracies: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def worst(self) -> float:
        """Lowest subgroup accuracy."""
        return min(self.accuracies)

    @property
    def worst_group(self) -> int:
        """Id of the subgroup with the lowest accuracy (the lowest id among ties)."""
        return self.groups[self.accuracies.index(self.worst)]

    def __str__(self) -> str:
        return f"average {self.average:.1%}, worst group {self.worst:.1%} (group {self.worst_group})"


@torch.no_grad()
def group_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, *,
                   batch_size: int = 1024) -> GroupAccuracy:
    """Accuracy of ``model`` on every subgroup of ``(x, y)`` and the worst of them.

    Parameters
    ----------
    model : nn.Module
        A trained classifier (evaluated in eval mode, on the device of ``x``).
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Their labels.
    groups : Tensor of shape (n,), int64
        Subgroup id of every example (a recorded attribute, or :func:`pixel_clusters`).
    batch_size : int
        Examples per forward pass.

    Returns
    -------
    GroupAccuracy

    References
    ----------
    S. Sagawa, P. W. Koh, T. B. Hashimoto and P. Liang, "Distributionally Robust Neural
    Networks for Group Shifts", ICLR 2020 (worst-group accuracy).

    Examples
    --------
    >>> model = nn.Linear(1, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[-1.0], [1.0]])); _ = model.bias.zero_()
    >>> x, y = torch.tensor([[-1.0], [1.0], [2.0], [-2.0]]), torch.tensor([0, 1, 1, 1])
    >>> result = group_accuracy(model, x, y, torch.tensor([0, 0, 1, 1]))
    >>> result.average, result.accuracies, result.worst
    (0.75, (1.0, 0.5), 0.5)
    """
    func = "group_accuracy"
    if not isinstance(model, nn.Module):
        fail(func, "model", "an nn.Module", model, error=TypeError)
    x = _check_features(x, "x", func, ndim=None)
    x, y = check_xy(x, y, func)
    groups = _check_labels(groups, "groups", func, x.shape[0])
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    for p in model.parameters():
        if p.device.type == "meta" or p.device != x.device or (p.is_floating_point() and p.dtype != x.dtype):
            fail(func, "x", f"inputs on the device and dtype of the model's parameters ({p.device}, {p.dtype})", x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + batch_size]).cpu() for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)
    if logits.dim() != 2:
        fail(func, "model", "a classifier returning logits of shape (n, n_classes)",
             f"<a model returning shape {tuple(logits.shape)}>")
    if int(y.max()) >= logits.shape[1]:
        fail(func, "y", f"labels in [0, {logits.shape[1] - 1}] (the model has {logits.shape[1]} outputs)",
             f"<a maximum label of {int(y.max())}>")
    preds = logits.argmax(1)
    correct = (preds == y.cpu()).double()
    ids, inverse, counts = torch.unique(groups.cpu(), return_inverse=True, return_counts=True)
    hits = torch.zeros(ids.numel(), dtype=torch.float64).index_add_(0, inverse, correct)
    accs = (hits / counts).tolist()
    return GroupAccuracy(float(correct.mean()), tuple(ids.tolist()), tuple(accs), tuple(counts.tolist()))
