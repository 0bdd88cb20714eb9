"""Registry: decorator, local plugin folder, entry points, unknown names."""

from __future__ import annotations

import textwrap

import pytest

from benchmark import registry
from benchmark.model import Recommender


def test_builtins_and_example_plugin_are_registered():
    names = registry.available()
    assert "popularity" in names
    assert "itemknn" in names  # models/itemknn.py, discovered from the local folder


def test_unknown_model_lists_available():
    with pytest.raises(registry.UnknownModelError) as e:
        registry.get("no-such-model")
    msg = str(e.value)
    assert "no-such-model" in msg and "popularity" in msg and "models/README.md" in msg


def test_resolve_all_and_lists():
    assert registry.resolve("all") == registry.available()
    assert registry.resolve("popularity, itemknn") == ["popularity", "itemknn"]
    with pytest.raises(registry.UnknownModelError):
        registry.resolve("popularity,nope")


def test_decorator_rejects_non_recommenders():
    with pytest.raises(TypeError):
        registry.register("bad")(object)


def test_plugin_folder_is_discovered(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(textwrap.dedent('''
        import numpy as np
        from benchmark.model import Recommender
        from benchmark.registry import register

        @register("test-plugin-zeros")
        class Zeros(Recommender):
            """Scores everything zero."""
            def __init__(self, value: float = 0.0):
                self.value = value
            def fit(self, train, valid=None, *, options=None):
                self.n_ = train.shape[1]
                return self
            def score(self, fold_in):
                return np.full((fold_in.shape[0], self.n_), self.value, dtype=np.float32)
    '''))
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setenv("BENCHMARK_MODELS_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="broken.py"):
        reg = registry.discover(force=True)
    assert "test-plugin-zeros" in reg
    cls = reg["test-plugin-zeros"]
    assert cls.description == "Scores everything zero."
    assert cls().get_params() == {"value": 0.0}
    assert cls.default_params() == {"value": 0.0}
    registry._REGISTRY.pop("test-plugin-zeros")


def test_entry_points_are_loaded(monkeypatch):
    class EP:
        name = "test-ep-model"

        def load(self):
            class FromEntryPoint(Recommender):
                """Loaded from an entry point."""

            return FromEntryPoint

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()])
    reg = registry.discover(force=True)
    assert reg["test-ep-model"].description == "Loaded from an entry point."
    registry._REGISTRY.pop("test-ep-model")


def test_set_params_validates():
    cls = registry.get("itemknn")
    m = cls().set_params(k=5)
    assert m.k == 5
    with pytest.raises(ValueError, match="no parameter"):
        m.set_params(nope=1)


def test_every_builtin_has_a_display_name_and_a_plugin_defaults_to_its_id():
    """``display_name`` is declared on Recommender (default: the registry id)."""
    from benchmark.model import Recommender

    names = {n: registry.get(n).label_for_reports() for n in registry.available()}
    assert names["multvae"] == "Mult-VAE" and names["ease"] == "EASE" and names["ials"] == "iALS"
    assert Recommender.display_name == ""

    class Mine(Recommender):
        name = "mine"

    assert Mine.label_for_reports() == "mine"
