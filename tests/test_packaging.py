"""The package installs as pyproject.toml says: pins equal requirements.txt's, console scripts
installed and answering --help (.ci/run installs the package with `pip install -e . --no-deps`)."""

import ast
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT

SCRIPT_DIR = os.path.dirname(sys.executable)


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def requirement_pins() -> list[str]:
    """requirements.txt's `name==version` lines, comments left out."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        lines = [line.split("#")[0].strip() for line in f]
    return [line for line in lines if line]


def test_pyproject_pins_are_requirements_txt():
    project = pyproject()["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert sorted(declared) == sorted(requirement_pins())
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", pin) for pin in declared)


def doc_first_line(module: str) -> str:
    with open(importlib.util.find_spec(module).origin) as f:
        return ast.get_docstring(ast.parse(f.read())).splitlines()[0]


def help_runs(scripts: dict, script_dir: str) -> None:
    """Each script prints its entry module's docstring and own flags for --help (absl exits 1
    after the help, as `python -m MODULE --help` does)."""
    runs = {
        name: subprocess.Popen(
            [os.path.join(script_dir, name), "--help"],
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in scripts
    }
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), f"{name} --help exited {proc.returncode}:\n{out}"
        assert doc_first_line(scripts[name].split(":")[0]) in out, out
        assert "--model_dir" in out, f"{name} --help does not list its flags:\n{out}"


def test_console_scripts_are_installed_and_answer_help():
    scripts = pyproject()["project"]["scripts"]
    assert set(scripts) == {
        "rarl-train",
        "rarl-evaluate",
        "rarl-predict",
        "rarl-export-tflite",
        "rarl-export-saved-model",
        "rarl-export-web",
    }
    installed = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.name.startswith("rarl-")
    }
    # The README's test command (and .ci/run) installs the package before pytest.
    assert installed == scripts, (
        "the package is not installed as pyproject.toml says: run "
        "`pip install -e . --no-deps` (as .ci/run does)"
    )
    help_runs(scripts, SCRIPT_DIR)


@pytest.mark.slow
def test_pip_install_e_in_a_fresh_venv(tmp_path):
    """The README's install, without the requirements file: `pip install -e .` alone (minutes:
    it downloads TensorFlow and the rest)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-e", ROOT], check=True, timeout=1800
    )
    help_runs(pyproject()["project"]["scripts"], str(venv / "bin"))
