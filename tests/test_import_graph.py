"""No import circle among the modules of rarl_tf/, imports inside functions counted
(a circle of deferred imports still ties the modules into one that cannot be read alone)."""

import ast
import os

from conftest import ROOT

PACKAGES = ("rarl_tf",)


def project_modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    modules[dotted.removesuffix(".__init__")] = path
    return modules


def imported(tree: ast.AST, modules: dict) -> set[str]:
    """The project modules a module's code imports, anywhere in it: `from a.b import c` is a.b.c
    where that is a module, else a.b."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update(
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in modules
                else node.module
                for alias in node.names
            )
    return found & set(modules)


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        with open(path) as f:
            graph[name] = imported(ast.parse(f.read()), modules) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle_through_a_function_level_import():
    modules = {"a": "", "b": "", "c": ""}
    a = imported(ast.parse("import b"), modules)
    b = imported(ast.parse("def f():\n    from c import x"), modules)
    c = imported(ast.parse("from a import y"), modules)
    assert circles({"a": a, "b": b, "c": c}) == [["a", "b", "c"]]
    assert circles({"a": a, "b": b, "c": set()}) == []


def test_no_import_circle_in_rarl_tf():
    graph = import_graph()
    # The config is plain values (no file I/O): its only project imports are the migrations of
    # older runs and the lists of datasets and location heads, which import nothing of the
    # project but the heads' list (the migrations read old heads' settings through it).
    assert graph["rarl_tf.config.experiment"] == {
        "rarl_tf.config.compat",
        "rarl_tf.config.datasets",
        "rarl_tf.config.location_heads",
    }
    assert graph["rarl_tf.config.compat"] == {"rarl_tf.config.location_heads"}
    assert graph["rarl_tf.config.datasets"] == graph["rarl_tf.config.location_heads"] == set()
    assert "rarl_tf.model.factory" in graph["rarl_tf.model_folder"]  # the function-level import
    assert circles(graph) == []


# The floors of the layout (docs/design.md, "Layout"): a module imports only from its own part
# or a lower floor, so the tree reads bottom-up as the data flows.
FLOORS = {
    "config": 0,
    "cli": 0,
    "atomic": 0,
    "data": 1,
    "model": 1,
    "evaluation": 2,
    "model_folder": 2,
    "inference": 3,
    "training": 4,
    "train": 5,
    "evaluate": 5,
    "export": 5,
    # predict runs an export as the export registry loads it (rarl_tf/export/registry.py).
    "predict": 6,
}


def part(module: str) -> str:
    """rarl_tf.model.agent -> model, rarl_tf.train -> train, rarl_tf.export.tflite -> export."""
    return module.split(".")[1]


def test_every_import_points_down_the_floors():
    graph = import_graph()
    assert {part(m) for m in graph if m not in PACKAGES} == set(FLOORS)
    upward = [
        (a, b)
        for a, imports in graph.items()
        for b in imports
        if a not in PACKAGES
        and b not in PACKAGES
        and part(a) != part(b)
        and FLOORS[part(b)] >= FLOORS[part(a)]
    ]
    assert upward == []


def test_no_test_module_imports_another():
    """Shared test code lives in tests/'s helper modules (conftest, entry_points, voc_files,
    canvases, ...), not in a test file another test must know about."""
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    for node in ast.walk(ast.parse(f.read())):
                        modules = (
                            [a.name for a in node.names]
                            if isinstance(node, ast.Import)
                            else [node.module or ""]
                            if isinstance(node, ast.ImportFrom)
                            else []
                        )
                        offenders += [(name, m) for m in modules if m.startswith("test_")]
    assert offenders == []
