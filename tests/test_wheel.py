"""The package a user installs: build the sdist and wheel, install the wheel into a fresh
virtual environment, and run the CLI from an empty folder.

Offline: the build uses this environment's setuptools (no build isolation), the wheel is
installed with ``--no-deps --no-index``, and the fresh environment sees the dependencies
already installed here through a ``.pth`` file naming this environment's site-packages,
never the repository (whose editable-install hook lives in a ``.pth`` file there, which
Python does not run for a path added that way).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"),
                    re.MULTILINE).group(1)  # [project] version (tomllib is Python 3.11+)
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "benchmark")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


def _env(tmp: Path) -> dict[str, str]:
    """This environment less whatever could lead the child back to the repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "BENCHMARK_MODELS_DIR",
                        "BENCHMARK_DATA_DIR", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PYTHONNOUSERSITE="1", MPLCONFIGDIR=str(tmp / "mpl"), PIP_NO_INPUT="1")
    return env


def _run(cmd: list, *, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(p: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert p.returncode == 0, f"{what}: exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def _package_files() -> set[str]:
    """Every file of the package in the source tree, as paths inside a wheel."""
    out = set()
    for f in (REPO / "benchmark").rglob("*"):
        rel = f.relative_to(REPO)
        if f.is_file() and not any(p == "__pycache__" or p.startswith(".") for p in rel.parts) \
                and f.suffix not in (".pyc", ".pyo"):
            out.add(rel.as_posix())
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build sdist + wheel (the wheel from the sdist) of a copy of the source tree."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed here: the wheel cannot be built offline "
                    "(pip install 'setuptools>=77')")
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist = tmp / "src", tmp / "dist"
    src.mkdir()
    for name in SOURCE:  # a copy: the build writes build/ and *.egg-info next to the sources
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=_IGNORE)
        elif path.exists():
            shutil.copy2(path, src / name)
    env = _env(tmp)
    if importlib.util.find_spec("build") is not None:
        # `python -m build`: the sdist, then the wheel built from the unpacked sdist, so a
        # file missing from the sdist is missing from the wheel too.
        p = _ok(_run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src],
                     cwd=tmp, env=env), "python -m build")
        noise = [line for line in (p.stdout + p.stderr).splitlines()
                 if "warning" in line.lower() or "deprecat" in line.lower()]
        assert not noise, "the build warns:\n" + "\n".join(noise)
        sdists = list(dist.glob("cf_benchmark-*.tar.gz"))
        assert len(sdists) == 1, sorted(dist.iterdir())
    else:  # without `build` (pip install -e .[test] brings it): pip's own PEP 517 build
        _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--no-index", "-w", dist, src], cwd=tmp, env=env), "pip wheel")
    wheels = list(dist.glob("cf_benchmark-*.whl"))
    assert len(wheels) == 1, sorted(dist.iterdir())
    return wheels[0]


def test_the_wheel_and_sdist_hold_every_file_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _package_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"  # package data included
    assert "benchmark/reference/published.json" in names
    info = f"cf_benchmark-{VERSION}.dist-info"
    assert wheel.name.startswith(f"cf_benchmark-{VERSION}-py3-none-any")
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "cf-benchmark = benchmark.cli:main" in entry_points
    assert not any(n.startswith(("tests/", "models/", "datasets/")) for n in names)
    sdist = next(wheel.parent.glob("cf_benchmark-*.tar.gz"), None)
    if sdist is not None:
        import tarfile

        with tarfile.open(sdist) as tar:
            held = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        assert {"pyproject.toml", "README.md", "LICENSE", "benchmark/reference/published.json"} <= held


def test_installed_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    env = _env(tmp_path)
    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env), "venv")
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    # The wheel alone, offline; then the dependencies already installed here made visible.
    _ok(_run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
              "--no-cache-dir", wheel], cwd=tmp_path, env=env), "pip install the wheel")
    fresh_site = Path(_ok(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               cwd=tmp_path, env=env), "purelib").stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    assert not any(Path(d).resolve() == REPO.resolve() for d in here)
    (fresh_site / "zz_cf_benchmark_test_deps.pth").write_text(
        "".join(f"{d}\n" for d in sorted(here)), encoding="utf-8")

    empty = tmp_path / "empty"
    empty.mkdir()
    probe = _ok(_run([py, "-c", (
        "import json, benchmark\n"
        "from importlib import resources\n"
        "from benchmark.reference import load_published, published_for\n"
        "data = resources.files('benchmark.reference').joinpath('published.json')\n"
        "print(json.dumps({'file': benchmark.__file__, 'version': benchmark.__version__,\n"
        "  'json': str(data), 'entries': len(load_published()['entries']),\n"
        "  'multvae_ml20m': [e['model'] for e in published_for('ml-20m')].count('multvae')}))\n"
    )], cwd=empty, env=env), "import the installed package")
    info = json.loads(probe.stdout.strip().splitlines()[-1])
    installed = Path(info["file"]).resolve()
    assert installed.is_relative_to(venv.resolve()), info  # the wheel's copy ...
    assert not installed.is_relative_to(REPO.resolve()), info  # ... never the repository's
    assert Path(info["json"]).resolve().is_relative_to(venv.resolve())
    assert info["version"] == VERSION
    assert info["entries"] > 0 and info["multvae_ml20m"] >= 1  # the published numbers load

    version = _ok(_run([py, "-m", "benchmark", "--version"], cwd=empty, env=env), "--version")
    assert version.stdout.strip() == f"cf-benchmark {VERSION}"
    script = bindir / ("cf-benchmark.exe" if os.name == "nt" else "cf-benchmark")
    assert script.is_file()
    p = _ok(_run([script, "--version"], cwd=empty, env=env), "cf-benchmark --version")
    assert p.stdout.strip() == f"cf-benchmark {VERSION}"

    assert not any(empty.iterdir())
    p = _ok(_run([py, "-m", "benchmark", "run", "--models", "popularity,ease", "--dataset",
                  "synthetic", "--no-progress"], cwd=empty, env=env), "benchmark run")
    assert "popularity" in p.stdout and "ease" in p.stdout
    rows = [json.loads(line) for line in
            (empty / "results" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(r["model"], r["part"]) for r in rows} == {
        ("popularity", "valid"), ("popularity", "test"), ("ease", "valid"), ("ease", "test")}
    assert all(r["suite_version"] == VERSION and r["versions"]["cf-benchmark"] == VERSION
               for r in rows)
    assert all(0 < r["metrics"]["ndcg@100"] < 1 for r in rows)
    assert (empty / "reports" / "index.html").is_file()
    assert (empty / "datasets" / "synthetic").is_dir()  # the default ./datasets of the cwd
