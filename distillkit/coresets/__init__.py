"""Coreset selection: choose a small subset of real examples that trains nearly as well as
the whole set. One module per family; every method is registered in :data:`METHODS` and
callable through :func:`select`:

========================  ==================================================
family                    registered names
========================  ==================================================
baseline                  ``random``
geometric                 ``herding``, ``kcenter``
uncertainty               ``least_confidence``, ``entropy``, ``margin``
error / loss              ``forgetting``, ``sensitivity``, ``el2n``, ``grand``
decision boundary         ``deepfool``, ``cal``
gradient matching         ``craig``, ``gradmatch``
========================  ==================================================
"""

from ._base import (
    METHODS,
    class_budgets,
    embed,
    gradient_embedding,
    make_selection,
    register,
    resolve_features,
    select,
    select_by_score,
)
from .cal import cal, cal_scores, knn
from .deepfool import deepfool, deepfool_perturbation, deepfool_scores
from .geometric import herding, k_center_greedy
from .gradient import (
    cluster_sizes,
    craig,
    craig_similarity,
    facility_location,
    facility_location_naive,
    gradmatch,
    orthogonal_matching_pursuit,
)
from .loss import (
    ForgettingRecorder,
    el2n,
    el2n_scores,
    forgetting,
    forgetting_counts,
    grand,
    grand_scores,
    importance_sample,
    sensitivity,
    sensitivity_scores,
)
from .proxy import predict_proba, train_proxy
from .random import random_selection
from .uncertainty import entropy, entropy_scores, least_confidence, least_confidence_scores, margin, margin_scores

__all__ = [
    "METHODS", "ForgettingRecorder", "cal", "cal_scores", "class_budgets", "cluster_sizes", "craig",
    "craig_similarity", "deepfool", "deepfool_perturbation", "deepfool_scores", "el2n", "el2n_scores", "embed",
    "entropy", "entropy_scores", "facility_location", "facility_location_naive", "forgetting", "forgetting_counts",
    "gradient_embedding", "gradmatch", "grand", "grand_scores", "herding", "importance_sample", "k_center_greedy",
    "knn", "least_confidence", "least_confidence_scores", "make_selection", "margin", "margin_scores",
    "orthogonal_matching_pursuit", "predict_proba", "random_selection", "register", "resolve_features", "select",
    "select_by_score", "sensitivity", "sensitivity_scores", "train_proxy",
]
