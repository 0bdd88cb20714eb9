"""Result rows: atomic appends, truncated tails tolerated, arrays round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.results import ResultStore, run_key


def test_append_and_read(tmp_path):
    st = ResultStore(tmp_path)
    st.append({"model": "a", "metrics": {"ndcg@100": np.float32(0.5)}, "nan": float("nan")})
    st.append({"model": "b"})
    rows = st.rows()
    assert [r["model"] for r in rows] == ["a", "b"]
    assert rows[0]["metrics"]["ndcg@100"] == pytest.approx(0.5)
    assert rows[0]["nan"] is None  # never NaN in JSON


def test_truncated_tail_is_skipped_with_warning_and_next_append_is_clean(tmp_path):
    st = ResultStore(tmp_path)
    st.append({"model": "a"})
    with open(st.path, "a") as f:
        f.write('{"model": "half')  # a process killed mid-write
    with pytest.warns(UserWarning, match="unreadable"):
        assert [r["model"] for r in st.rows()] == ["a"]
    st.append({"model": "c"})
    with pytest.warns(UserWarning):
        assert [r["model"] for r in st.rows()] == ["a", "c"]


def test_arrays_round_trip_and_leave_no_temporary(tmp_path):
    st = ResultStore(tmp_path)
    st.save_arrays("x-test", {"ndcg@100": np.arange(3.0)})
    got = st.load_arrays("x-test")
    np.testing.assert_array_equal(got["ndcg@100"], np.arange(3.0))
    assert [p.name for p in (tmp_path / "arrays").iterdir()] == ["x-test.npz"]
    assert st.load_arrays("missing") is None


def test_run_key_is_stable_and_sensitive():
    a = run_key(model="m", params={"a": 1, "b": 2}, seed=0)
    assert a == run_key(model="m", params={"b": 2, "a": 1}, seed=0)
    assert a != run_key(model="m", params={"a": 1, "b": 2}, seed=1)
