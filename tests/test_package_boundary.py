"""The installed plugin stands alone: no module of it imports the laboratory (benchmarks/), which is not installed."""
import ast
import os
import subprocess
import sys

import nnunet_distilldsm

PACKAGE = os.path.dirname(os.path.abspath(nnunet_distilldsm.__file__))
LABORATORY = ("benchmarks", "tests", "conftest", "helpers")


def imported_modules(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_no_plugin_module_imports_the_laboratory():
    offending = []
    for folder, _, files in os.walk(PACKAGE):
        for file in (f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            offending += [f"{os.path.relpath(path, PACKAGE)}: {m}" for m in imported_modules(path)
                          if m.split(".")[0] in LABORATORY]
    assert not offending


def test_the_plugin_imports_and_runs_outside_the_repository(tmp_path):
    """Every plugin module imports, and the CLI answers, from a folder where `benchmarks` cannot be found."""
    modules = sorted({os.path.relpath(os.path.join(f, n), os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                      .removesuffix(".__init__") for f, _, files in os.walk(PACKAGE) for n in files
                      if n.endswith(".py") and "trainer_shims" not in f})
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "assert not any(m.split('.')[0] == 'benchmarks' for m in sys.modules), 'benchmarks imported'\n"
            "from nnunet_distilldsm.cli import main\nmain(['trainer-dir'])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == nnunet_distilldsm.trainer_dir()
