"""``python -m benchmark recommend``: a saved model in use, item ids in, item ids out.

    python -m benchmark recommend results/models/<run_key> --user 50,172,181 --k 10
    python -m benchmark recommend MODEL_DIR --input histories.csv --format json --out recs.json

A history is given in the data's own item ids: ``--user ID,ID,...`` (one user, named
``user``), or ``--input FILE`` of (user, item) lines (CSV or TSV, an optional header naming
``user`` and ``item``). The answer is one line per (user, rank): ``user,rank,item,score``
as CSV on stdout (``--format json``: a list of objects; ``--out FILE``: written there
through a temporary name). An id the model was not fitted with is an error naming it
(exit 2), as are a model folder that cannot be read and a model saved by a newer suite.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .checks import UsageError

__all__ = ["read_histories", "recommendation_rows", "format_rows", "recommend_command"]


def read_histories(user: str | None, input_path: str | None) -> list[tuple[str, list[str]]]:
    """(user, [item ids]) in input order, from ``--user`` or ``--input``."""
    if (user is None) == (input_path is None):
        raise UsageError("give one of --user ID,ID,... or --input FILE (user,item lines)")
    if user is not None:
        items = [x.strip() for x in user.split(",") if x.strip()]
        if not items:
            raise UsageError("--user: no item ids (e.g. --user 50,172,181)")
        return [("user", items)]
    path = Path(input_path)
    if not path.is_file():
        raise UsageError(f"--input {input_path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    sep = "\t" if "\t" in text.split("\n", 1)[0] else ","
    users: dict[str, list[str]] = {}
    for n, fields in enumerate(csv.reader(io.StringIO(text), delimiter=sep), 1):
        if not fields or not "".join(fields).strip():
            continue
        if n == 1 and [f.strip().lower() for f in fields[:2]] == ["user", "item"]:
            continue  # the header
        if len(fields) < 2:
            raise UsageError(f"--input {input_path}, line {n}: expected user{sep}item, got {fields!r}")
        users.setdefault(fields[0].strip(), []).append(fields[1].strip())
    if not users:
        raise UsageError(f"--input {input_path}: no (user, item) lines")
    return list(users.items())


def recommendation_rows(model: Any, histories: list[tuple[str, list[str]]], k: int) -> list[dict]:
    """``{user, rank, item, score}`` per recommended item, best first per user."""
    from .recommend import NoItemIdsError, UnknownItemsError

    try:
        recs = model.recommend_ids([items for _, items in histories], k)
    except (UnknownItemsError, NoItemIdsError) as exc:
        raise UsageError(str(exc)) from exc
    out = []
    for (user, _), pairs in zip(histories, recs.as_lists(), strict=True):
        out += [{"user": user, "rank": r, "item": item, "score": score}
                for r, (item, score) in enumerate(pairs, 1)]
    return out


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["user", "rank", "item", "score"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "score": f"{r['score']:.6g}"} for r in rows)
    return buf.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_for_use(model_dir: str) -> Any:
    """The saved model, or a :class:`UsageError` that says why it cannot be read."""
    import benchmark.registry as registry

    from .model import Recommender

    path = Path(model_dir)
    if not (path / "model.json").is_file():
        raise UsageError(f"{model_dir}: not a saved model folder (no model.json); models are "
                         "saved by run --save-models under RESULTS_DIR/models/<run_key>")
    try:
        return Recommender.load(path)
    except registry.UnknownModelError as exc:
        raise UsageError(f"{model_dir}: {exc} (a plugin's model needs --models-dir)") from exc
    except (ValueError, KeyError, OSError) as exc:
        raise UsageError(f"{model_dir}: {exc}") from exc


def recommend_command(model_dir: str, *, user: str | None, input_path: str | None, k: int,
                      fmt: str, out: str | None) -> str | None:
    """Run ``recommend``; returns the text for stdout (None when written to ``out``)."""
    if k < 1:
        raise UsageError(f"--k {k}: must be at least 1")
    histories = read_histories(user, input_path)
    text = format_rows(recommendation_rows(load_for_use(model_dir), histories, k), fmt)
    if out is None:
        return text
    _write_atomic(Path(out), text)
    return None
