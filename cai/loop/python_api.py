"""`cai.run`: the whole loop from a recipe, from Python."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def run(recipe: Any, *, out: str | Path | None = None, dry_run: bool = False, **selection: Any) -> dict:
    """Run (or continue) the loop a recipe describes, as ``cai run`` does; returns
    ``{"rounds": [...], "seconds": s}`` (``OUT/report.html`` holds the report).

    ``recipe``: a recipe YAML path, or a :class:`~cai.loop.recipe.Recipe` / dict with the same
    fields (paths in it are relative to the current folder). ``out`` overrides the recipe's run
    folder. ``selection``: ``start``, ``until``, ``force`` as the CLI's ``--from``/``--until``/
    ``--force``. Raises :class:`~cai.core.errors.CaiError` naming ``stage.field`` on a bad recipe,
    before any model loads.

    Example::

        import cai
        summary = cai.run("recipes/loop-quickstart.yaml", dry_run=True)
    """
    from cai.core.errors import CaiError
    from cai.loop.runner import run_loop

    if isinstance(recipe, (str, Path)):
        return run_loop(str(recipe), out=None if out is None else str(out), dry_run=dry_run, **selection)
    import yaml

    data = recipe.model_dump(mode="json", exclude_unset=True) if hasattr(recipe, "model_dump") else dict(recipe)
    with tempfile.TemporaryDirectory(prefix="cai-recipe-") as tmp:
        path = Path(tmp) / "recipe.yaml"
        data = {k: (str(Path(v).resolve()) if k in ("prompts", "principles_dir") and isinstance(v, str) else v)
                for k, v in data.items()}
        if isinstance(data.get("constitution"), str) and Path(data["constitution"]).suffix:
            data["constitution"] = str(Path(data["constitution"]).resolve())
        # the recipe's folder is a temporary one: its relative paths are the caller's, made absolute here
        if isinstance(data.get("humans"), dict):
            data["humans"] = {k: (str(Path(v).resolve()) if k in ("labels", "db") and isinstance(v, str) else v)
                              for k, v in data["humans"].items()}
        if isinstance(data.get("models"), dict):
            data["models"] = {k: (str(Path(v).resolve()) if isinstance(v, str) and v.startswith(("./", "../")) else v)
                              for k, v in data["models"].items()}
        if "out" in data and out is None:
            out = Path(data["out"]).resolve()
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            return run_loop(str(path), out=None if out is None else str(out), dry_run=dry_run, **selection)
        except CaiError as exc:  # the temporary file is gone when this returns: name the recipe instead
            if str(path) not in str(exc):
                raise
            text = str(exc).replace(f"{path}:", "recipe (given in memory), line ").replace(str(path), "recipe (given in memory)")
            exc.message, exc.path, exc.line, exc.args = text, None, None, (text,)
            raise
