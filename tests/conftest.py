"""Shared test set-up: point the data loaders at the offline copy when it is there."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

if "DISTILLKIT_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["DISTILLKIT_DATA"] = str(SHARED_DATA)
os.environ.setdefault("TQDM_DISABLE", "1")
# notebook kernels inherit this: passive OpenMP waiting avoids a collapse under CPU contention
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def data_root():
    """The folder holding MNIST/raw and FashionMNIST/raw, or None."""
    root = os.environ.get("DISTILLKIT_DATA")
    if root and (pathlib.Path(root) / "MNIST" / "raw").is_dir():
        return pathlib.Path(root)
    return None


@pytest.fixture
def mnist_root():
    root = data_root()
    if root is None:
        pytest.skip("MNIST files are not available offline (set DISTILLKIT_DATA)")
    return root

# a claim that does not hold raises inside the notebook kernel (the nbval failure names it)
os.environ.setdefault("DISTILLKIT_CLAIMS", "raise")
