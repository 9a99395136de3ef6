"""Contrastive Active Learning (CAL) coresets: keep the examples whose neighbours disagree with them.

Margatina, Vernikos, Barrault & Aletras, "Active Learning by Acquiring Contrastive Examples"
(EMNLP 2021) score an example by the mean KL divergence ``mean_j KL(p_j || p_i)`` between the
predicted distributions of its k nearest neighbours in feature space and its own. The
examples with the **highest** divergence (similar inputs, different predictions) are kept.
In the paper the neighbours are labelled and the candidates unlabelled examples; to select a
coreset from a fully labelled set every example is both (our reconstruction). The neighbours
come from an exact, chunked k-nearest-neighbour search (:func:`knn`).

Normalisation (a choice, stated): the authors' code L2-normalises the embeddings before the
neighbour search (cosine neighbours). Here the default searches the features as given
(Euclidean neighbours, ``normalize=False``), which is what the book's chapters use;
``normalize=True`` L2-normalises every feature row first, as the authors do.

Without ``model=`` and ``probs=`` the probabilities come from the proxy of
:func:`~distillkit.coresets.proxy.train_proxy` (an MLP with one hidden layer), seeded by ``generator``.
"""

from __future__ import annotations

import torch

from .._validation import check_bool, check_float, check_generator, check_int, check_option, check_tensor, fail
from ._base import check_common, make_selection, register, resolve_features, select_by_score
from .proxy import _check_probs, _fit_proxy, _predict_proba, predict_proba

__all__ = ["cal", "cal_scores", "knn"]

KL_DIRECTIONS = ("neighbour||point", "point||neighbour")


def knn(features: torch.Tensor, k: int, *, chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours (Euclidean) of every row among the other rows, in chunks.

    Distances are computed block by block (``chunk_size`` x ``chunk_size``) and merged into a
    running top-k: memory O(chunk_size^2 + n k), never an n x n matrix or sort. A row is never
    its own neighbour (its duplicates are); ties go to the smaller index, whatever the chunks.

    Parameters
    ----------
    features : Tensor of shape (n, d)
        Points, one per row; each point's neighbours exclude itself.
    k : int
        Neighbours per row, in [1, n - 1].
    chunk_size : int
        Rows of the distance matrix computed at a time (memory bound).

    Returns
    -------
    distances : Tensor of shape (n, k)
        Increasing along each row, on the device of ``features``.
    indices : Tensor of shape (n, k), int64

    Examples
    --------
    >>> knn(torch.tensor([[0.0], [1.0], [3.0]]), 1)[1].squeeze(1).tolist()
    [1, 0, 1]
    """
    features = check_tensor(features, "features", "knn", ndim=2, floating=True, min_rows=2, half=False)
    k = check_int(k, "k", "knn", low=1, high=features.shape[0] - 1)
    return _knn(features, k, check_int(chunk_size, "chunk_size", "knn", low=1))


def _smallest(d: torch.Tensor, k: int):
    """The k smallest entries of each row of d (m, c) ordered by (value, column), so that the
    result never depends on the order in which topk returns ties."""
    kth = d.topk(k, dim=1, largest=False).values[:, -1:]  # (m, 1)
    less = d < kth
    tied = (d == kth) & ((d == kth).cumsum(1) <= k - less.sum(1, keepdim=True))
    cols = (less | tied).nonzero()[:, 1].reshape(d.shape[0], k)  # exactly k per row, in column order
    vals = d.gather(1, cols)
    order = torch.sort(vals, dim=1, stable=True).indices
    return vals.gather(1, order), cols.gather(1, order)


def _knn(f: torch.Tensor, k: int, chunk: int, progress: bool = False):  # progress: a bar over query blocks
    from tqdm.auto import trange

    n = f.shape[0]
    sq = (f * f).sum(1)  # (n,)
    out_d, out_i = [], []
    for qs in trange(0, n, chunk, disable=not progress, desc="knn", leave=False):
        q = f[qs:qs + chunk]
        m = q.shape[0]
        rows = torch.arange(m, device=f.device)
        best_d, best_i = f.new_empty(m, 0), torch.empty(m, 0, dtype=torch.int64, device=f.device)
        for rs in range(0, n, chunk):
            d2 = (sq[qs:qs + m, None] + sq[None, rs:rs + chunk] - 2 * q @ f[rs:rs + chunk].T).clamp_min(0)  # (m, c)
            own = rows + qs - rs  # column of each query row itself in this block
            inside = (own >= 0) & (own < d2.shape[1])
            d2[rows[inside], own[inside]] = torch.inf
            v, j = _smallest(d2, min(k, d2.shape[1]))
            cand_d, cand_i = torch.cat([best_d, v], 1), torch.cat([best_i, j + rs], 1)
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]  # earlier blocks hold smaller indices
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        out_d.append(best_d.sqrt())
        out_i.append(best_i)
    return torch.cat(out_d), torch.cat(out_i)


def cal_scores(probs: torch.Tensor, features: torch.Tensor, *, k: int = 10, kl_direction: str = "neighbour||point",
               eps: float = 1e-12, chunk_size: int = 1024, progress: bool = False,
               normalize: bool = False) -> torch.Tensor:
    """CAL divergence: the mean KL between each example's prediction and its neighbours'.

    ``s_i = (1/k) sum_{j in kNN(i)} KL(p_j || p_i)``, with ``kNN(i)`` the ``k`` nearest other
    examples in feature space (exact and chunked, :func:`knn`). Margatina et al. (2021) use
    ``KL(p_neighbour || p_candidate)``: ``kl_direction="neighbour||point"``, the default;
    ``"point||neighbour"`` gives ``KL(p_i || p_j)``. Probabilities are clipped to ``[eps, 1]``
    before the logarithm. CAL keeps the highest scores.

    Parameters
    ----------
    probs : Tensor of shape (n, n_classes)
        Predicted class probabilities (rows sum to 1).
    features : Tensor of shape (n, d)
        The space in which neighbours are searched.
    k : int
        Neighbours per example, in [1, n - 1] (10 in the paper).
    kl_direction : {"neighbour||point", "point||neighbour"}
        Which divergence is averaged: KL(neighbour || point), as in the CAL paper, or the reverse.
    eps : float
        Clipping of the probabilities, in (0, 1).
    chunk_size : int
        Block size of the kNN search and of the divergences.
    progress : bool
        A progress bar over the kNN blocks.
    normalize : bool
        L2-normalise every row of ``features`` before the neighbour search, as Margatina et
        al.'s code does. Default False: Euclidean neighbours in the features as given.

    Returns
    -------
    Tensor of shape (n,)
        On the device of ``probs``.

    References
    ----------
    Margatina, Vernikos, Barrault & Aletras, "Active Learning by Acquiring Contrastive
    Examples", EMNLP 2021.

    Examples
    --------
    >>> probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    >>> cal_scores(probs, torch.tensor([[0.0], [1.0], [2.0]]), k=1).argmax().item()  # its neighbour disagrees
    2
    """
    func = "cal_scores"
    probs = _check_probs(probs, func)
    features = check_tensor(features, "features", func, ndim=2, floating=True, min_rows=2, half=False)
    if features.shape[0] != probs.shape[0]:
        fail(func, "features", f"a tensor with one row per row of probs ({probs.shape[0]})", features)
    k = check_int(k, "k", func, low=1, high=max(probs.shape[0] - 1, 1))
    kl_direction = check_option(kl_direction, "kl_direction", func, KL_DIRECTIONS)
    eps = check_float(eps, "eps", func, low=0.0, high=1.0, low_open=True, high_open=True)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    progress = check_bool(progress, "progress", func)
    if check_bool(normalize, "normalize", func):
        features = torch.nn.functional.normalize(features, dim=1)  # rows of norm 1 (a zero row stays zero)
    return _cal(probs, features, k, kl_direction, eps, chunk_size, progress)


def _cal(probs, features, k, kl_direction, eps, chunk_size, progress):
    _, nb = _knn(features, k, chunk_size, progress)
    nb = nb.to(probs.device)
    p = probs.clamp(eps, 1.0)
    logp = p.log()
    out = []
    for s in range(0, p.shape[0], chunk_size):
        pi, lpi = p[s:s + chunk_size, None], logp[s:s + chunk_size, None]  # (m, 1, C)
        pj, lpj = p[nb[s:s + chunk_size]], logp[nb[s:s + chunk_size]]  # (m, k, C)
        kl = (pj * (lpj - lpi)).sum(2) if kl_direction == "neighbour||point" else (pi * (lpi - lpj)).sum(2)
        out.append(kl.mean(1))
    return torch.cat(out)


@register("cal")
def cal(x, y, budget, *, per_class=True, features=None, model=None, generator=None, progress=False, probs=None,
        k=10, kl_direction="neighbour||point", eps=1e-12, chunk_size=1024, proxy_epochs=30, normalize=False):
    """Contrastive Active Learning as a coreset: keep the examples with the highest CAL divergence.

    Every example is both a candidate and a neighbour (our reconstruction for a fully labelled
    set); neighbours are searched over all classes, also with ``per_class``.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    budget : int
        Number of examples to keep (exact per class when ``per_class``).
    per_class : bool
        Balanced per-class budgets (largest remainder) or one global ranking.
    features : Tensor of shape (n, d), optional
        The neighbour space. Default: ``model``'s penultimate embedding, else the flattened ``x``.
    model : nn.Module, optional
        Gives the probabilities (softmax of its logits) unless ``probs`` is given. Without
        ``model`` and ``probs``, a proxy is trained on ``features`` (or ``x``) for ``proxy_epochs``.
    generator : torch.Generator, int or None
        Seeds the proxy (the scores themselves are deterministic).
    progress : bool
        Progress bars over the proxy's epochs and the kNN blocks.
    probs : Tensor of shape (n, n_classes), optional
        Precomputed probabilities (``model``, if given, then only serves the features).
    k, kl_direction, eps, chunk_size, normalize :
        See :func:`cal_scores` (``normalize=True`` follows the authors' L2-normalised embeddings;
        the default does not normalise).
    proxy_epochs : int
        Training epochs of the proxy network trained when no ``model`` is given.

    Returns
    -------
    Selection
        Indices from the highest to the lowest kept score; ``scores`` are the divergences.

    References
    ----------
    Margatina et al., EMNLP 2021.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]]); y = torch.tensor([0, 0, 1, 1])
    >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    >>> cal(x, y, 2, probs=probs, k=1).indices.tolist()
    [2, 0]
    """
    func = "cal"
    x, y, budget = check_common(x, y, budget, func, per_class=per_class, progress=progress)
    progress = check_bool(progress, "progress", func)
    feats = resolve_features(x, features, model, func)
    proxy = probs is None and model is None
    if proxy:
        space = x if features is None else feats
        probs = predict_proba(_fit_proxy(space, y, proxy_epochs, generator, func, progress), space)
    else:
        check_generator(generator, func)
        probs = _predict_proba(model, x, 512, func) if probs is None else _check_probs(probs, func, n_rows=x.shape[0])
    k = check_int(k, "k", func, low=1, high=max(x.shape[0] - 1, 1))
    scores = cal_scores(probs, feats, k=k, kl_direction=kl_direction, eps=eps, chunk_size=chunk_size,
                        progress=progress, normalize=normalize)
    info = {"per_class": per_class, "k": k, "kl_direction": kl_direction, "proxy": proxy, "normalize": normalize}
    idx = select_by_score(scores, budget, y=y, order="top", per_class=per_class)
    return make_selection(idx, method=func, scores=scores, info=info)
