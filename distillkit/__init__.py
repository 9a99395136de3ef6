"""distillkit: data distillation and coreset selection, the library behind the book.

Subpackages are named by concept: :mod:`distillkit.coresets`, :mod:`distillkit.distill`,
:mod:`distillkit.robust`, :mod:`distillkit.theory`.
"""

from .evaluate import EvalResult, accuracy, class_size_weights, evaluate_set, majority_rate
from .train import train_model
from .types import Selection, SyntheticSet
from .utils import default_device, seed_everything

__version__ = "0.1.0"

__all__ = [
    "EvalResult",
    "Selection",
    "SyntheticSet",
    "accuracy",
    "class_size_weights",
    "default_device",
    "evaluate_set",
    "majority_rate",
    "seed_everything",
    "train_model",
    "__version__",
]
