"""Where the SwiftShader device cannot be had: outside CI the GPU-runtime tests skip saying
why; under CI=true the fetch fails the run in one line, and so does a pytest run in which the
GPU-runtime tests executed none (tests/conftest.py)."""

import pytest

from conftest import gpu_runtime_failure, python_env, run_python


def _without_device(tmp_path, **variables) -> dict:
    """An environment in which the device cannot be fetched: an empty cache folder and a PATH
    without apt-get, dpkg or ldconfig."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    return python_env(
        RARL_SWIFTSHADER_DIR=str(tmp_path / "cache"), PATH=str(tmp_path / "bin"), **variables
    )


def test_the_fetch_fails_ci_in_one_line_and_only_warns_elsewhere(tmp_path):
    ci = run_python("-m", "tools.swiftshader", env=_without_device(tmp_path, CI="true"))
    assert ci.returncode == 1
    assert ci.stderr.strip() == (
        "error: CI=true needs the SwiftShader device and it cannot be had: apt-get not found: "
        "the SwiftShader device is fetched from Debian's chromium-common package"
    )
    env = _without_device(tmp_path)
    env.pop("CI", None)
    elsewhere = run_python("-m", "tools.swiftshader", env=env)
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.strip().startswith("error: no SwiftShader device: apt-get not found")


# One xdist worker is enough: the controller (which collects nothing) counts as with two, and
# each worker collects the whole file, TensorFlow import included.
@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_ci_fails_a_run_whose_gpu_runtime_tests_all_skipped(tmp_path, workers):
    # A GPU-runtime test that needs nothing but the device (its fixture skips at set-up). Under
    # pytest-xdist (.ci/run) the controller, which collects nothing, must still see it skip.
    test = (
        "tests/inference/test_gpu_runtime.py::"
        "test_predict_auto_warns_and_answers_as_the_cpu_where_the_gpu_is_wrong"
    )
    env = _without_device(tmp_path, CI="true")
    ci = run_python("-m", "pytest", "-q", *workers, test, env=env)
    assert ci.returncode == 1, ci.stdout[-2000:]
    # -rs (pyproject.toml) prints the skip and its reason, then the run fails saying why.
    assert "SKIPPED" in ci.stdout and "could not be fetched" in ci.stdout
    assert "error: none of the 1 GPU-runtime tests executed" in ci.stderr


def test_the_ci_rule_fails_only_when_none_executed():
    assert gpu_runtime_failure(13, 0, ci=True).startswith("error: none of the 13 GPU-runtime")
    assert gpu_runtime_failure(13, 1, ci=True) is None
    assert gpu_runtime_failure(0, 0, ci=True) is None  # none collected (a subset of the tests)
    assert gpu_runtime_failure(13, 0, ci=False) is None
