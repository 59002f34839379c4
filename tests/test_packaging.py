"""The package installs as pyproject.toml says: pins equal requirements.txt's, console scripts
installed and answering --help, a wheel holding rarl_tf alone (.ci/run installs the package with
`pip install -e . --no-deps`)."""

import ast
import configparser
import importlib.metadata
import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT
from rarl_tf.export.registry import EXPORTERS


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


def test_console_scripts_are_installed():
    """The editable install .ci/run makes matches pyproject.toml (its scripts answer --help in
    test_a_wheel_installs_rarl_tf_alone, installed from a wheel)."""
    scripts = pyproject()["project"]["scripts"]
    exporters = {e.script: f"{e.module}:run" for e in EXPORTERS.values()}
    assert scripts == {
        "rarl-train": "rarl_tf.train:run",
        "rarl-evaluate": "rarl_tf.evaluate:run",
        "rarl-predict": "rarl_tf.predict:run",
        **exporters,  # one per registered export target
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


def checkout_copy(dest: str) -> str:
    """The files a commit would hold (tracked and new, ignored ones left out) copied to DEST, so
    the wheel is built from what a clone holds and its build folder lands in the copy."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in listed:
        source = os.path.join(ROOT, name)
        if name and os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy(source, os.path.join(dest, name))
    return dest


def fresh_venv(path: str) -> str:
    """A venv without pip whose only extra path is this venv's site-packages (TensorFlow and the
    rest), added as a plain path: its .pth files, this checkout's editable install among them,
    are not read there. Returns its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    (packages,) = subprocess.run(
        [os.path.join(path, "bin", "python"), "-c", "import site; print(*site.getsitepackages())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    with open(os.path.join(packages, "dependencies.pth"), "w") as f:
        f.write(site.getsitepackages()[0] + "\n")
    return packages


def test_a_wheel_installs_rarl_tf_alone(tmp_path):
    """`pip wheel` of a copy of the checkout, installed into a fresh venv: rarl_tf (with the
    web page's files) is the one top-level package, no `export` or `tools`, and each console
    script answers --help from there, run outside the checkout. The venv borrows this venv's
    dependencies instead of installing them (the slow test below installs everything)."""
    source = checkout_copy(str(tmp_path / "src"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    build = ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), source]
    subprocess.run(pip + build, check=True, timeout=300)
    (wheel,) = tmp_path.glob("rarl_tf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = configparser.ConfigParser()
        declared.read_string(archive.read(entry_points).decode())
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"rarl_tf"}
    assert {"rarl_tf/export/web_assets/index.html", "rarl_tf/export/web_assets/app.js"} <= set(
        names
    )
    scripts = pyproject()["project"]["scripts"]
    assert dict(declared["console_scripts"]) == scripts
    assert all(target.startswith("rarl_tf.") for target in scripts.values())

    venv = str(tmp_path / "venv")
    packages = fresh_venv(venv)
    install = ["install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(pip + ["--python", os.path.join(venv, "bin", "python")] + install, check=True)
    assert not {"export", "tools"} & set(os.listdir(packages))
    assert os.path.isfile(os.path.join(packages, "rarl_tf", "export", "web_assets", "app.js"))
    help_runs(scripts, os.path.join(venv, "bin"))


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


def test_the_checkouts_export_shortcuts_only_forward():
    """export/ (not installed) holds one `python -m` shortcut per runnable exporter, each the
    same two statements, and run it is the rarl_tf.export module of its name."""
    folder = os.path.join(ROOT, "export")
    shortcuts = sorted(
        name[:-3] for name in os.listdir(folder) if name.endswith(".py") and name != "__init__.py"
    )
    # One per registered target, and the rule checker of a .tflite.
    registered = [e.module.removeprefix("rarl_tf.export.") for e in EXPORTERS.values()]
    assert shortcuts == sorted(registered + ["gpu_rules"])
    for name in shortcuts:
        assert importlib.util.find_spec(f"rarl_tf.export.{name}") is not None
        with open(os.path.join(folder, f"{name}.py")) as f:
            body = ast.parse(f.read()).body[1:]  # after the docstring
        assert [ast.unparse(node) for node in body] == [
            "from export import forward",
            "forward(__name__, __spec__.name)",
        ]
    run = subprocess.run(
        [sys.executable, "-m", "export.gpu_rules"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "usage: python -m rarl_tf.export.gpu_rules" in run.stderr
