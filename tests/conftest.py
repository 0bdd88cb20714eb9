"""Shared fixtures: small splits with planted structure and the real small datasets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("BENCHMARK_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["BENCHMARK_OFFLINE"] = "1"  # nothing may download at test time


def shared_dataset(name: str) -> Path:
    """Path of ../shared/datasets/<name>, or skip the test with the reason."""
    p = SHARED_DATASETS / name
    if not p.exists():
        pytest.skip(f"real dataset {name} not found at {p} (the project's ../shared/datasets)")
    return p


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "datasets"
    d.mkdir()
    return d


def place_raw(data_dir: Path, dataset: str, shared_name: str) -> Path:
    """Copy a real dataset from ../shared into <data_dir>/<dataset>/raw (a temp folder)."""
    src = shared_dataset(shared_name)
    raw = data_dir / dataset / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, raw / src.name, dirs_exist_ok=True)
    return raw


@pytest.fixture(scope="session")
def ml100k_split(tmp_path_factory):
    """The ml-100k split (paper protocol, default seed) from ../shared/datasets."""
    from benchmark.data import load_split

    d = tmp_path_factory.mktemp("ml100k")
    place_raw(d, "ml-100k", "ml-100k")
    return load_split("ml-100k", data_dir=d)


@pytest.fixture(scope="session")
def synthetic_split(tmp_path_factory):
    """The built-in synthetic split (Mult-VAE generative model, 5,000 x 2,000)."""
    from benchmark.data import load_split

    return load_split("synthetic", data_dir=tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="session")
def planted_split():
    """A tiny split with planted block structure (600 users, 120 items, 4 taste groups).

    Users in group g click mostly items of block g, plus a few popular items; a model that
    learns item co-occurrence beats popularity by a wide margin.
    """
    from benchmark.testing import planted_split as make

    return make()
