"""The layout's one rule (docs/ARCHITECTURE.md): imports point one way, scripts -> engine -> dataset,
model -> utils. A helper package never imports the packages built on it."""
import ast
import glob
import os
import subprocess
import sys

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


def test_nothing_imports_a_tool():
    """Tools are leaves (STYLE.md 18): what two scripts need lives in a package."""
    modules = project_modules()
    wrong = [f"{os.path.relpath(path, ROOT)} imports {other}" for name, path in sorted(modules.items())
             for other in sorted(imported_modules(path, modules))
             if other.startswith("tools.")]
    assert not wrong, wrong


def test_both_import_forms_are_read(tmp_path):
    """The check above reads `from tools import x` and `import tools.x` alike."""
    path = tmp_path / "m.py"
    path.write_text("import tools.segment\nfrom tools import webui\nfrom tools.demo import main\n")
    modules = {"tools.segment": "", "tools.webui": "", "tools.demo": "", "tools": ""}
    assert imported_modules(str(path), modules) == {"tools", "tools.segment", "tools.webui", "tools.demo"}


# Modules that only running a trained model needs: exported files, their runtimes, video, the web page.
DEPLOYMENT = ("engine.segmenter", "engine.video", "engine.exported", "engine.backend", "engine.export",
              "onnx", "onnxruntime", "openvino", "nncf", "gradio")


@pytest.mark.slow
def test_the_command_lines_of_training_load_no_deployment_module():
    """engine.cli builds every script's parser; the segmenter's flags take their default from it, not the
    other way round. (tests/test_backend.py checks the training scripts themselves.)"""
    code = (f"import sys; import engine.cli; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DEPLOYMENT!r} or m in {DEPLOYMENT!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


IDIOM = ("ROOT = Path(__file__).resolve().parents[1]\n"
         "sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable\n")


def test_every_tool_reaches_the_project_one_way():
    """One idiom makes the tools runnable as files (STYLE.md 12): no other change of sys.path."""
    wrong = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tools", "*.py"))):
        text = open(path, encoding="utf-8").read()
        if not path.endswith("__init__.py") and (text.count(IDIOM) != 1 or text.count("sys.path") != 1):
            wrong.append(os.path.relpath(path, ROOT))
    assert not wrong, wrong


def test_no_source_file_is_over_500_lines():
    """A file a reader can hold in mind: one that grows past 500 lines holds more than one job (issue 26)."""
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    long = {f: n for f in files if (n := sum(1 for _ in open(os.path.join(ROOT, f)))) > 500}
    assert not long, long
