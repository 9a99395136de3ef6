"""PyTorch's default initialisation, re-done with an explicit generator.

``nn.Conv2d`` and ``nn.Linear`` initialise themselves from the global RNG when built. To
keep the library's promise (every random draw comes from a ``generator`` argument), models
are built under ``torch.device('meta')``-free default construction and then re-initialised
here with the same distributions PyTorch uses (Kaiming-uniform with a = sqrt(5) for the
weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_generator, fail

__all__ = ["init_parameters"]


def init_parameters(model: nn.Module, generator=None) -> nn.Module:
    """Re-initialise every Conv/Linear/norm layer of ``model`` in place from ``generator``.

    Parameters
    ----------
    model : nn.Module
        The network whose parameters are re-initialised in place.
    generator : torch.Generator, int or None
        Source of the weights: a CPU generator, an int seed, or None for a fresh generator
        seeded from the operating system (as everywhere in distillkit). The global RNG is
        never drawn from.

    Returns
    -------
    nn.Module
        ``model`` itself.

    Examples
    --------
    >>> a = init_parameters(nn.Linear(3, 2), 0)
    >>> b = init_parameters(nn.Linear(3, 2), 0)
    >>> torch.equal(a.weight, b.weight)
    True
    """
    if not isinstance(model, nn.Module):
        fail("init_parameters", "model", "a torch.nn.Module", model, error=TypeError)
    gen = check_generator(generator, "init_parameters")
    return _init_parameters(model, gen)


@torch.no_grad()
def _init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            w = module.weight
            fan_in = w[0].numel()
            # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            w.copy_(_uniform(w.shape, bound, generator).to(w))
            if module.bias is not None:
                module.bias.copy_(_uniform(module.bias.shape, bound, generator).to(module.bias))
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                module.weight.fill_(1.0)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    return model


def _uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
