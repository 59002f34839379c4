"""No function of the project, its tools or its tests is over 60 lines (def to last line,
docstring included): the guard issue 30 keeps, checked rather than counted by hand."""

import ast
import os

from conftest import ROOT

LIMIT = 60


def long_functions(root=ROOT, folders=("rarl_tf", "export", "tools", "tests")) -> list[str]:
    """'path:line name (n lines)' for each function over LIMIT lines under `folders` of `root`."""
    found = []
    for folder in folders:
        for directory, _, files in os.walk(os.path.join(root, folder)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(directory, name)
                with open(path) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        lines = node.end_lineno - node.lineno + 1
                        if lines > LIMIT:
                            where = os.path.relpath(path, root)
                            found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def test_a_long_function_is_found(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(str(tmp_path), ("pkg",)) == ["pkg/m.py:5 long (61 lines)"]
