"""`cai.evaluate`: the behaviour suites from Python, as `cai eval behavior` runs them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cai.api.models import ModelLike, backend_config, build, open_models


def evaluate(
    model: ModelLike = None,
    *,
    responses: str | Path | None = None,
    baseline: ModelLike = None,
    judge: ModelLike = None,
    suites: list[str] | None = None,
    backend: str = "auto",
    options: dict[str, Any] | None = None,
    out: str | Path | None = None,
    **settings: Any,
) -> dict:
    """Run the probe suites on ``model`` (or judge ``responses`` made elsewhere), optionally against
    ``baseline`` and with ``judge``; returns the summary (``OUT/summary.json``: per suite the rate
    with its n and interval, direction and change, the detector beside the judge, the judge's
    health). ``suites``: built-in names or suite files (e.g. a `cai redteam` ``suite.yaml``);
    default every built-in suite. ``settings``: any other
    :class:`~cai.evals.config.BehaviorConfig` field (``limit``, ``sampling``, ``n_boot``...).
    Backends the call loads are closed when it returns. Raises
    :class:`~cai.core.errors.CaiError` on bad input.

    Example::

        import cai
        summary = cai.evaluate("smollm2-135m-instruct", suites=["over-refusal"], limit=4)
        [(r["suite"], r["metric"]) for r in summary["results"]]
    """
    from cai.evals.behavior import run_behavior
    from cai.evals.config import BehaviorConfig

    with tempfile.TemporaryDirectory(prefix="cai-eval-") as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "run"
        config = build(
            BehaviorConfig, out=str(folder), responses=str(responses) if responses is not None else None,
            model=backend_config(model, backend, options) if responses is None else None,
            baseline=backend_config(baseline, backend, options) if baseline is not None else None,
            judge=backend_config(judge, backend, options) if judge is not None else None,
            suites=list(suites) if suites else None, **settings)
        with open_models() as m:
            loaded = {"backend": m.get(model, backend, options) if responses is None else None,
                      "baseline": m.get(baseline, backend, options) if baseline is not None else None,
                      "judge": m.get(judge, backend, options) if judge is not None else None}
            return run_behavior(config, **{k: v for k, v in loaded.items() if v is not None})
