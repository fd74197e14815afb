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
