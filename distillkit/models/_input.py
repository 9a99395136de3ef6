"""The check every model's ``forward`` makes on its input (private to distillkit.models)."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_tensor, fail


def check_input(model: nn.Module, x, func: str, *, min_ndim: int = 1) -> torch.Tensor:
    """``x`` must be a floating tensor with data, at least ``min_ndim`` dims, on the model's
    device and in its dtype. No finiteness check: it would synchronise a GPU on every call."""
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        fail(func, "x", "a tensor with data (not on the meta device)", f"<a meta tensor of shape {tuple(x.shape)}>")
    x = check_tensor(x, "x", func, floating=True, finite=False)
    if x.dim() < min_ndim:
        fail(func, "x", f"a tensor with at least {min_ndim} dimensions", x)
    p = next(model.parameters(), None)
    if p is not None and p.device.type != "meta":
        if x.dtype != p.dtype:
            fail(func, "x", f"a tensor of the model's dtype {p.dtype} (convert one of them)", x, error=TypeError)
        if x.device != p.device:
            fail(func, "x", f"a tensor on the model's device {p.device}", f"<a tensor on {x.device}>")
    return x
