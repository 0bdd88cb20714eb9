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


def test_result_rows_follow_the_schema_and_a_newer_row_is_flagged(tmp_path):
    """run writes ResultRow objects (every field, schema_version); the report reads rows of
    its version or older and says so when a row comes from a newer suite."""
    import dataclasses
    import json

    from benchmark.api import run_experiment
    from benchmark.report.load import load_results
    from benchmark.results import SCHEMA_VERSION, ResultRow

    rows = run_experiment("popularity", "synthetic", data_dir=tmp_path / "d",
                          results_dir=tmp_path / "r", report_dir=None)
    required = {f.name for f in dataclasses.fields(ResultRow)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for r in rows:
        assert required <= set(r) and r["schema_version"] == SCHEMA_VERSION
        assert set(r) <= {f.name for f in dataclasses.fields(ResultRow)}
    newer = dict(rows[0], schema_version=SCHEMA_VERSION + 1, id="from-the-future")
    with open(tmp_path / "r" / "results.jsonl", "a") as f:
        f.write(json.dumps(newer) + "\n")
    data = load_results(tmp_path / "r")
    assert any("newer cf-benchmark" in m for m in data.notes.messages)
