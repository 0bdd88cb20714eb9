"""Model registry: name -> Recommender class.

Three ways in, all ending in the same table:

1. the ``@register("name")`` decorator (the built-ins in ``benchmark/models/`` use it);
2. the entry-point group ``benchmark.models`` of any installed package
   (``[project.entry-points."benchmark.models"] mymodel = "mypkg.mod:MyModel"``);
3. any ``*.py`` file in the local plugin folder (``./models`` by default, or the folder in
   ``BENCHMARK_MODELS_DIR``), imported at discovery; its ``@register`` calls add the models.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sources import model_source_hash

if TYPE_CHECKING:  # pragma: no cover
    from .model import Recommender

_REGISTRY: dict[str, type[Recommender]] = {}
_DISCOVERED = False

# Built-in plugin modules (one per family), imported lazily by discover().
_BUILTIN_MODULES = [
    "benchmark.models.popularity",
    "benchmark.models.vae",
    "benchmark.models.recvae",
    "benchmark.models.ease",
    "benchmark.models.edlae",
    "benchmark.models.wmf",
    "benchmark.models.ials",
    "benchmark.models.slim",
    "benchmark.models.lightfm",
]


class PluginImportWarning(UserWarning):
    """A model plugin file failed to import (its file, line and traceback are named)."""


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def _is_recommender(cls: Any) -> bool:
    """A subclass of :class:`benchmark.model.Recommender`, checked by its bases' names: the
    registry sits below the model contract (``Recommender.load`` looks classes up here), so
    it does not import it."""
    return isinstance(cls, type) and any(
        c.__module__ == "benchmark.model" and c.__qualname__ == "Recommender" for c in cls.__mro__
    )


#: What a model name may be (it is typed on command lines, written in file names and tables).
NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
#: Names with a meaning of their own on the command line.
RESERVED_NAMES = frozenset({"all"})


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a model's name, or None."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        return f"model name {name!r} is not allowed: use {NAME_RULE}"
    if name in RESERVED_NAMES:
        return f"model name {name!r} is reserved (--models {name} means every model)"
    return None


class DuplicateModelError(ValueError):
    """Two classes under one model name (exit 2, naming both files)."""


def _file_of(cls: type) -> str:
    import inspect

    try:
        return str(inspect.getsourcefile(cls) or cls.__module__)
    except TypeError:  # pragma: no cover - a class defined where no file is
        return cls.__module__


def register(name: str, *, description: str | None = None, replace: bool = False, **class_attrs):
    """Class decorator registering a :class:`Recommender` under ``name``.

    Args:
        name: the name used on the command line (``--models name``).
        description: one line for ``python -m benchmark models`` (default: the first line
            of the class docstring).
        replace: take a name another class holds (a built-in, on purpose); without it a
            second class under one name is a :class:`DuplicateModelError` naming both files.
            A replacement records the file it replaced in ``replaces`` (rows and the report
            name the plugin's file and source hash).
        class_attrs: further class attributes to set (e.g. ``iterative=True``).
    """

    problem = name_problem(name)
    if problem:
        raise ValueError(f"@register: {problem}")

    def deco(cls: type[Recommender]) -> type[Recommender]:
        if not _is_recommender(cls):
            raise TypeError(f"@register({name!r}) must decorate a Recommender subclass")
        existing = _REGISTRY.get(name)
        same = existing is not None and existing.__qualname__ == cls.__qualname__ and \
            _file_of(existing) == _file_of(cls)  # the same file imported again
        if existing is not None and not same and not replace:
            raise DuplicateModelError(
                f"model name {name!r} is registered twice: by {_file_of(existing)} and by "
                f"{_file_of(cls)}; one name, one class: rename one, or, to replace a built-in on "
                f"purpose, write @register({name!r}, replace=True)")
        # A registered class may be re-registered under another name with other defaults.
        target = cls
        if cls.name and cls.name != name:
            target = type(cls.__name__, (cls,), {"__doc__": cls.__doc__, "__module__": cls.__module__})
        target.name = name
        doc = (cls.__doc__ or "").strip().splitlines()
        target.description = description or (doc[0] if doc else "")
        for k, v in class_attrs.items():
            setattr(target, k, v)
        if existing is not None and not same:
            target.replaces = _file_of(existing)
        _REGISTRY[name] = target
        return cls

    return deco


def _plugin_dir() -> Path:
    return Path(os.environ.get("BENCHMARK_MODELS_DIR", "models"))


def import_plugin(path: Path) -> None:
    """Import one plugin file (its ``@register`` calls add its models); a broken file is a
    :class:`PluginImportWarning`, never an exception."""
    mod_name = f"benchmark_plugin_{path.stem}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except DuplicateModelError:  # not a broken file: a conflict the user must settle
        del sys.modules[mod_name]
        raise
    except Exception as exc:  # a broken plugin must not take the suite down, nor vanish
        del sys.modules[mod_name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f"{path}, line {frames[-1].lineno}" if frames else str(path)
        if isinstance(exc, SyntaxError) and exc.lineno:
            where = f"{path}, line {exc.lineno}"
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]).rstrip()
        warnings.warn(
            f"model plugin {where} could not be imported, so its models are not available: "
            f"{type(exc).__name__}: {exc}\n{tb}",
            PluginImportWarning,
            stacklevel=2,
        )


def use_models_dir(folder: str | os.PathLike) -> None:
    """Take plugins from ``folder`` (``--models-dir``, or ``models_dir`` in an experiment
    file) from now on, this process and its children; the registry is rediscovered."""
    os.environ["BENCHMARK_MODELS_DIR"] = str(Path(folder))
    discover(force=True)


def discover(force: bool = False) -> dict[str, type[Recommender]]:
    """Import built-ins, entry points and local plugins once; return the registry."""
    global _DISCOVERED
    if _DISCOVERED and not force:
        return _REGISTRY
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a missing dependency inside the module: say so
                warnings.warn(f"built-in models in {mod} unavailable: {exc}", stacklevel=2)
    try:
        eps = entry_points(group="benchmark.models")
    except TypeError:  # pragma: no cover - Python < 3.10
        eps = entry_points().get("benchmark.models", [])
    for ep in eps:
        try:
            cls = ep.load()
            if ep.name not in _REGISTRY:
                register(ep.name)(cls)
        except Exception as exc:
            warnings.warn(f"could not load model entry point {ep.name}: {exc!r}", stacklevel=2)
    folder = _plugin_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                import_plugin(path)
    _DISCOVERED = True
    for cls in _REGISTRY.values():  # the code as imported now, not as edited later
        model_source_hash(cls)
    return _REGISTRY


def available() -> list[str]:
    return sorted(discover())


def get(name: str) -> type[Recommender]:
    reg = discover()
    if name not in reg:
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(sorted(reg))} "
            f"(add your own as models/<name>.py, see models/README.md)"
        )
    return reg[name]


def resolve(spec: str) -> list[str]:
    """``"all"`` or a comma-separated list -> model names (unknown names raise)."""
    if spec.strip() == "all":
        return available()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UnknownModelError(f"no model named in {spec!r}; available: {', '.join(available())}")
    for n in names:
        get(n)
    return names


def select(spec: str, stats: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The models ``run``, ``tune`` and the plan work on: ``spec`` resolved (see
    :func:`resolve`), minus those whose ``skip_reason`` applies to a dataset of ``stats``
    (a model asked for by name is never skipped for size).

    Returns:
        (names to run, {skipped name: reason}).
    """
    explicit = spec.strip() != "all"
    names, skipped = [], {}
    for name in resolve(spec):
        reason = get(name).skip_reason(stats, explicit=explicit)
        if reason:
            skipped[name] = reason
        else:
            names.append(name)
    return names, skipped
