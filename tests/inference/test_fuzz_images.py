"""The fuzz harness (tests/fuzz_images.py) in its own process: no input crashes or hangs it."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_random_truncated_and_mutated_images_are_decoded_or_refused(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tests", "fuzz_images.py"),
            str(tiny_model_dir),
            str(tmp_path),
            "0",
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=240,
    )  # a hang fails here
    assert result.returncode == 0, result.stderr[-3000:]  # a segfault or OOM kill fails here
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["inputs"] >= 300
    assert report["categories"]["huge"] >= 30
    for path in ("load_image", "pipeline", "serving_default"):
        counts = report[path]
        assert counts["crashes"] == 0, (path, result.stderr[-3000:])
        assert counts["decoded"] + counts["refused"] == report["inputs"]
        assert counts["decoded"] >= report["categories"]["valid"] // 2  # not refusing everything
    print(json.dumps(report))
