"""benchmarks/gpu_check.py cannot rot: its --smoke run (every part tiny, on the CPU) completes,
every part succeeds, and the summary lands in the output folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    data = os.environ.get("DISTILLKIT_DATA")
    if not data or not (Path(data) / "MNIST").exists():
        pytest.skip("needs the offline MNIST copy (DISTILLKIT_DATA)")
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    names = [p["name"] for p in summary["parts"]]
    assert names == ["contract", "coreset_speed", "distill_speed", "mtt_speed", "peers", "coreset_paper", "dm_paper"]
    failed = {p["name"]: p["status"] for p in summary["parts"] if p["status"] != "ok"}
    assert not failed, (failed, proc.stdout[-2000:])
    assert proc.returncode == 0
    assert (out / "summary.md").read_text().startswith("# gpu_check (SMOKE")
    for p in summary["parts"]:
        assert (out / p["log"]).exists()
