"""The layout's one rule (docs/ARCHITECTURE.md): imports point one way, scripts -> engine -> dataset,
model -> utils. A helper package never imports the packages built on it."""
import ast
import glob
import os

import pytest

from conftest import ROOT

FORBIDDEN = {"utils": {"dataset", "model", "engine"}, "model": {"dataset", "engine"}, "dataset": {"engine"}}


def imported_packages(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    wrong = [f"{os.path.relpath(path, ROOT)} imports {name}"
             for path in sorted(glob.glob(os.path.join(ROOT, package, "*.py")))
             for name in set(imported_packages(path)) & FORBIDDEN[package]]
    assert not wrong, wrong


# The project's own modules: packages, tools and the scripts at the top (tests are not part of the graph).
PACKAGES = ("engine", "dataset", "model", "utils", "tools")


def project_modules():
    """{module name: path} of every source file of the project outside tests/."""
    paths = glob.glob(os.path.join(ROOT, "*.py"))
    for package in PACKAGES:
        paths += glob.glob(os.path.join(ROOT, package, "*.py"))
    modules = {}
    for path in paths:
        name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        modules[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return modules


def imported_modules(path, modules):
    """The project modules `path` imports, anywhere in the file (`from pkg import mod` counts as pkg.mod)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def test_the_import_graph_has_no_cycle():
    modules = project_modules()
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    state, cycles = {}, []  # depth-first search: 1 on the current path, 2 done

    def visit(name, path):
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycles.append(" -> ".join(path[path.index(other):] + [other]))
            elif other not in state:
                visit(other, path + [other])
        state[name] = 2
    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles
