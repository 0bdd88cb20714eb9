"""``python -m benchmark tune``: the command's glue and its summary table (the study
machinery is :mod:`benchmark.tuning`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import registry
from ..protocol import Split
from ..tuning.policy import PRUNERS, log
from ..tuning.workers import _short, tune_model


def format_summary(results: list[tuple[str, dict[str, Any]]]) -> str:
    """A table per model: defaults vs best validation NDCG@100, trial counts, seconds."""
    header = ["model", "defaults ndcg@100", "best ndcg@100", "best trial", "complete", "pruned",
              "failed", "tuning s"]
    rows = []
    for name, info in results:
        dv, bv = info.get("default_value"), info.get("best_value")
        rows.append([
            name,
            f"{dv:.4f}" if isinstance(dv, float) else (info.get("default_state") or "-").lower(),
            f"{bv:.4f}" if isinstance(bv, float) else "-",
            f"#{info['best_trial']}" if info.get("best_trial") is not None else "-",
            str(info["complete"]),
            str(info["pruned"]),
            str(info["failed"]),
            f"{info['seconds']:.1f}",
        ])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for name, info in results:
        params = info.get("best_params") or {}
        ps = ", ".join(f"{k}={_short(v)}" for k, v in params.items()) or "(no search space)"
        out.append(f"{name}: best trial #{info.get('best_trial')} value {info.get('best_value'):.6f}"
                   f"  {ps}  [study {info['study']}]")
    return "\n".join(out)


def tune_command(args: Any, split_loader: Callable[[Any], Split]) -> int:
    """``python -m benchmark tune``: tune each model, print a summary; exit 0, 1 or 2."""
    names = registry.resolve(args.models)
    if args.trials < 1:
        log(f"error: --trials must be at least 1, got {args.trials}")
        return 2
    workers = int(getattr(args, "workers", 1) or 1)
    if workers < 1:
        log(f"error: --workers must be at least 1, got {workers}")
        return 2
    pruner = getattr(args, "pruner", None) or "median"
    if pruner not in PRUNERS:
        log(f"error: unknown pruner {pruner!r}; use one of {', '.join(PRUNERS)}")
        return 2
    split = split_loader(args)
    stats = split.stats()
    names, skipped = registry.select(args.models, stats)
    for name, reason in skipped.items():
        log(f"[{name}] skipped: {reason} (ask for it by name to tune it anyway)")
    results: list[tuple[str, dict[str, Any]]] = []
    failures: list[str] = []
    for name in names:
        study = None
        if args.study:
            study = args.study if len(names) == 1 else f"{args.study}-{name}"
        try:
            _, info = tune_model(
                name,
                split,
                trials=args.trials,
                timeout=args.timeout,
                storage=args.storage,
                results_dir=args.results_dir,
                seed=args.seed,
                device=args.device,
                epochs=args.epochs,
                progress=not args.no_progress,
                study_name=study,
                workers=workers,
                pruner=pruner,
                fixed_params=getattr(args, "fixed_params", {}).get(name, {}),
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failures.append(f"{name}: {exc}")
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            continue
        results.append((name, info))
    if results:
        print(format_summary(results), flush=True)
        log(f"storage: {results[0][1]['storage']}  (rerun the same command to resume or extend "
            f"with a larger --trials; `run --trials N` trains the best and tests once)")
    if failures:
        log("failed: " + "; ".join(failures))
        return 1
    return 0
