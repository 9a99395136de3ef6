"""Checks for the coding exercises of the book: feedback that helps, never the answer.

Each ``check_<name>(fn)`` runs the student's function ``<name>`` on small hand-made and
random cases, compares it with distillkit's own implementation (the independent oracle) and
prints one message: ``Correct: ...``, ``Not done yet: ...`` while the stub still raises
``NotImplementedError``, or ``Not quite: ...`` with what is wrong and a ``Hint: ...``. A check
never raises, so a student notebook runs top to bottom, and it returns a
:class:`CheckResult` that is true only for a correct solution.

The student export (``./book.sh student``) writes the stub and the check call of every coding
exercise into the student notebook; they come from the ``"distillkit"`` metadata of the
exercise's solution cell. ``distillkit.exercises.CHECKS`` maps each exercise label to its check.

Examples
--------
>>> from distillkit.exercises import check_count_per_class
>>> def count_per_class(indices, y):
...     raise NotImplementedError  # your code here
>>> ok = check_count_per_class(count_per_class)
Not done yet: count_per_class still raises NotImplementedError. Replace its body with your code and run this cell again.
>>> bool(ok)
False
"""

from ._check import CHECKS as CHECKS  # label -> check; not in __all__, so the API page lists the checks only
from ._check import CheckResult
from .comparison import check_jaccard_matrix
from .coresets import (
    check_cal_aggregate,
    check_craig_weights,
    check_lightweight_scores,
    check_pooled_entropy,
    check_welling_herding,
)
from .distill import check_dm_loss_one_forward, check_kip_label_gradient
from .foundations import check_bootstrap_interval, check_count_per_class
from .robust import check_voronoi_from_scratch
from .theory import check_two_layer_loss

__all__ = [
    "CheckResult",
    "check_bootstrap_interval",
    "check_cal_aggregate",
    "check_count_per_class",
    "check_craig_weights",
    "check_dm_loss_one_forward",
    "check_jaccard_matrix",
    "check_kip_label_gradient",
    "check_lightweight_scores",
    "check_pooled_entropy",
    "check_two_layer_loss",
    "check_voronoi_from_scratch",
    "check_welling_herding",
]
