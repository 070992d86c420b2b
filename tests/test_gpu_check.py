"""benchmarks/gpu_check.sh --dry-run: the prepared GPU check runs end to end on CPU, so it cannot rot
between the rare GPU slots (each step ran and wrote its part of the summary)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_step(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["ok"] is True
    assert {k: v["status"] for k, v in summary["steps"].items()} == {
        "cuda_tests": "ok", "training": "ok", "flatness": "ok", "ranking": "ok", "search": "ok"}
    assert summary["cuda_tests"]["skipped"] == summary["cuda_tests"]["tests"] > 0  # no GPU here: all skip
    runs = summary["training"]["runs"]
    assert {"quick_fp32", "quick_bf16", "quick_bf16_cl"} <= set(runs) and all(r["img_s"] > 0 for r in runs.values())
    assert summary["flatness"]["exact"]["score_rel_diff"] < 1e-6  # same noise -> the official score
    assert summary["ranking"]["tau_tf32_vs_exact"] == 1.0  # TF32 changes nothing on a CPU
    assert summary["search"]["candidates"] > 0
    steps = re.findall(r"^== (\w+) \(at ", (out / "gpu_check.log").read_text(), flags=re.M)
    assert steps == ["cuda_tests", "training", "flatness", "ranking", "search"]
