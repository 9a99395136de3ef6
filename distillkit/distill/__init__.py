"""Synthetic dataset distillation: learn a small set of synthetic examples that trains a
network nearly as well as the full training set. Every method is registered in
:data:`METHODS` (``dd``, ``dc``, ``dsa``, ``dm``, ``mtt``, ``kip``) and callable through
:func:`distill`; the mathematical cores are pure tensor functions in
:mod:`distillkit.distill.losses`.
"""

from ._base import METHODS, ClassSampler, check_ipc, distill, init_synthetic, register
from .augment import AugParams, apply_aug, dsa_augment, sample_aug_params, siamese_augment
from .dc import dc, default_loops, dsa
from .dd import dd, dd_train, step_batches
from .dm import dm
from .experts import ExpertBuffer, expert_buffer_size, load_expert_trajectories, train_expert_trajectories
from .kernels import empirical_ntk, make_kernel, median_bandwidth, ntk_features
from .kip import kip
from .losses import (
    distribution_matching_loss,
    gaussian_kernel,
    gradient_matching_distance,
    kernel_ridge,
    trajectory_matching_loss,
)
from .mtt import mtt
from .unroll import unroll_sgd

__all__ = [
    "METHODS", "AugParams", "ClassSampler", "ExpertBuffer", "apply_aug", "check_ipc", "dc", "dd", "dd_train",
    "default_loops", "distill", "distribution_matching_loss", "dm", "dsa", "dsa_augment", "empirical_ntk",
    "expert_buffer_size", "gaussian_kernel", "gradient_matching_distance", "init_synthetic", "kernel_ridge", "kip",
    "load_expert_trajectories", "make_kernel", "median_bandwidth", "mtt", "ntk_features", "register",
    "sample_aug_params", "siamese_augment", "step_batches", "train_expert_trajectories", "trajectory_matching_loss",
    "unroll_sgd",
]
