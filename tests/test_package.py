"""The package's conventions: version, exports, scikit-learn's clone, parameter listing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sklearn.base import clone

import benchmark
from benchmark import registry


def test_version_and_exports():
    assert benchmark.__version__ and benchmark.__version__ != "0+unknown"
    p = subprocess.run([sys.executable, "-m", "benchmark", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"cf-benchmark {benchmark.__version__}"
    for name in ("load_split", "get_model", "list_models", "evaluate", "FitOptions", "Split",
                 "run_experiment", "build_report"):
        assert callable(getattr(benchmark, name)), name
    assert benchmark.get_model("ease") is registry.get("ease")
    with pytest.raises(AttributeError):
        benchmark.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", registry.available())
def test_sklearn_clone_copies_the_parameters(name):
    cls = registry.get(name)
    model = cls()
    copy = clone(model)
    assert copy is not model and type(copy) is type(model)
    assert copy.get_params() == model.get_params() == model.get_params(deep=True)


def test_models_params_lists_defaults_types_and_search_space():
    p = subprocess.run([sys.executable, "-m", "benchmark", "models", "--params", "ease"],
                       capture_output=True, text=True)
    assert p.returncode == 0
    assert "l2" in p.stdout and "10 .. 10000 (log)" in p.stdout and "float" in p.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmark", "models", "--params", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr


def test_quiet_verbose_and_progress_only_on_a_terminal(tmp_path):
    from test_bad_input import _clicks, _run_args, cli

    data = _clicks(tmp_path / "c.csv")
    args = _run_args(tmp_path, data, "--models", "multdae", "--epochs", "2", "--no-report",
                     "--param", "multdae.batch_size=50")
    args.remove("--no-progress")
    p = cli(*args, cwd=tmp_path)  # stderr is a pipe, not a terminal: no bars
    assert p.returncode == 0 and "[multdae] fitting on" in p.stderr and "plan:" in p.stderr
    assert "epoch/s" not in p.stderr and "s/epoch" not in p.stderr
    p = cli(*args, "--force", "--progress", cwd=tmp_path)
    assert "epoch" in p.stderr and "multdae:" in p.stderr  # the bar, asked for
    p = cli(*args, "--force", "-q", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "" and "multdae" in p.stdout  # the table only
