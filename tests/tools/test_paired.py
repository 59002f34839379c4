"""tools/paired.py: paired differences over seeds, against numbers worked by hand."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _ablation(path, variant, maps, report=None):
    runs = [
        {"seed": s, "mAP": m, **({"policy_report": report} if report else {})}
        for s, m in maps.items()
    ]
    path.write_text(json.dumps({"variants": {variant: {"runs": runs}}}))
    return f"{path}:{variant}"


def test_paired_difference_uses_common_seeds_and_sample_std(tmp_path):
    from tools.paired import paired, runs_by_seed

    a = runs_by_seed([_ablation(tmp_path / "a.json", "rarl", {0: 0.98, 1: 0.97, 2: 0.99})])
    b = runs_by_seed(
        [_ablation(tmp_path / "b.json", "random_inhibited", {0: 0.96, 1: 0.97, 3: 0.5})]
    )
    result = paired(a, b)
    assert result["seeds"] == [0, 1]
    assert result["a_minus_b"]["values"] == pytest.approx([0.02, 0.0])
    assert result["a_minus_b"]["mean"] == pytest.approx(0.01)
    assert result["a_minus_b"]["std"] == pytest.approx(0.02 / 2**0.5)  # n - 1


def test_paired_command_prints_both_tables_and_refuses_a_missing_variant(tmp_path):
    row = {"mAP": 0.9, "union_centre_inside": 0.8, "cells_kept": 0.4}
    report = {
        "placements": {
            "policy": {"mAP": 0.95, "union_centre_inside": 0.9},
            "other_image_state": row,
        },
        "differences": {
            "policy - other_image_state": {"difference": 0.05, "low": 0.01, "high": 0.09}
        },
    }
    a = _ablation(tmp_path / "a.json", "rarl", {0: 0.98, 1: 0.96}, report)
    b = _ablation(tmp_path / "b.json", "random_inhibited", {0: 0.97, 1: 0.97})
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.paired",
            f"--a={a}",
            f"--b={b}",
            f"--output={tmp_path / 'p.json'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "| mean ± std | 97.00 ± 1.41 | 97.00 ± 0.00 | +0.00 ± 1.41 |" in out.stdout
    assert (
        "| other_image_state | 90.00 ± 0.00 | - | 80.00 ± 0.00 | 40.00 ± 0.00 | - |" in out.stdout
    )
    assert "| policy - other_image_state | +5.00 ± 0.00 | [+1.00, +9.00]; [+1.00, +9.00] |" in (
        out.stdout
    )
    assert json.loads((tmp_path / "p.json").read_text())["paired"]["seeds"] == [0, 1]
    bad = subprocess.run(
        [sys.executable, "-m", "tools.paired", f"--a={a}", f"--b={tmp_path / 'b.json'}:nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "has no variant 'nope'" in bad.stderr
