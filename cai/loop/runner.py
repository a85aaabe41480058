"""`cai run`: plan each round (skip, resume, redo or run every stage, and say why), run it with
one progress view across stages, then build the next round from the failed probes.

Crash safety comes from three rules: a stage's manifest says ``running`` before it writes
anything and ``done`` only after its outputs are complete; a stage that continues its own work
(generate, sample, label, PPO) is resumed in place, any other is discarded and restarted; and a
stage is discarded by renaming its folder away first, so a manifest never outlives its outputs.
"""

from __future__ import annotations

import gc
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from cai.core.errors import CaiError
from cai.core.progress import duration
from cai.core.runs import lock_run, write_atomic
from cai.loop import console as console_view
from cai.loop import manifest
from cai.loop.inputs import check_stage_inputs, in_recipe_words
from cai.loop.recipe import STAGES, Recipe, Stage, load_recipe
from cai.loop.stages import (
    HumansNeeded,
    Round,
    build_stages,
    round_failures,
    trained_policy,
)


@dataclass
class Step:
    """What the plan does with one stage."""

    stage: Stage
    action: str
    """skip, run (never ran), resume (interrupted, same inputs), redo (inputs or config changed), build
    (the report) or stop (after --until)."""
    reason: str
    key: dict
    estimate: float | None = None
    """Seconds the stage took last time it finished (its old manifest), for the run's ETA."""


@dataclass
class Selection:
    """``--from``, ``--until`` and ``--force``: a stage name, optionally ``round-K/`` first."""

    start: tuple[int, str] | None = None
    until: tuple[int, str] | None = None
    force: tuple[int, str] | None = None

    @staticmethod
    def parse(value: str | None, flag: str, rounds: int) -> tuple[int, str] | None:
        if value is None:
            return None
        index, _, name = value.rpartition("/")
        round_index = 1
        if index:
            if not index.startswith("round-") or not index[6:].isdigit():
                raise CaiError(f"{flag} expects STAGE or round-K/STAGE, got '{value}'")
            round_index = int(index[6:])
            if not 1 <= round_index <= rounds:
                raise CaiError(f"{flag}: the recipe has {rounds} round(s), got '{value}'")
        if name not in STAGES:
            raise CaiError(f"{flag}: unknown stage '{name}' (stages: {', '.join(STAGES)})")
        return round_index, name

    def check(self, order: list[str]) -> None:
        """Refuse a stage the recipe does not run (``order``: its stages), and flags that
        contradict each other (--until before --from, --force before --from or after --until)."""
        def label(sel: tuple[int, str]) -> str:
            return sel[1] if sel[0] == 1 else f"round-{sel[0]}/{sel[1]}"

        def at(sel: tuple[int, str]) -> tuple[int, int]:
            return sel[0], order.index(sel[1])

        flags = (("--from", self.start), ("--until", self.until), ("--force", self.force))
        for flag, sel in flags:
            if sel and sel[1] not in order:
                raise CaiError(f"{flag} {label(sel)}: not in this recipe (its stages: {', '.join(order)})")
        for (a, sa), (b, sb) in (((flags[1]), flags[0]), (flags[2], flags[0]), (flags[1], flags[2])):
            if sa and sb and at(sa) < at(sb):
                raise CaiError(f"{a} {label(sa)} comes before {b} {label(sb)}: nothing to do")


def round_folder(run: Path, index: int) -> Path:
    return run if index == 1 else run / f"round-{index}"


def plan_round(stages: list[Stage], rnd: Round, run: Path, sel: Selection) -> list[Step]:
    """Decide, stage by stage, what to do and why. A stage is skipped only when its manifest is
    ``done`` with the same key and nothing it reads is going to run."""
    steps: list[Step] = []
    scheduled: set[str] = set()
    order = [s.name for s in stages]
    forced_from = order.index(sel.force[1]) if sel.force and sel.force[0] == rnd.index and sel.force[1] in order else None
    if sel.force and sel.force[0] < rnd.index:
        forced_from = 0  # an earlier round was forced: its outputs change, so does everything here
    start_at = order.index(sel.start[1]) if sel.start and sel.start[0] == rnd.index and sel.start[1] in order else 0
    if sel.start and sel.start[0] > rnd.index:
        start_at = len(order)
    until_at = order.index(sel.until[1]) if sel.until and sel.until[0] == rnd.index else len(order)
    for i, stage in enumerate(stages):
        key = stage_key(stage, run)
        old = manifest.read(stage.folder) if stage.name != "report" else None
        waits_on = [n for n in stage.needs if n in scheduled]
        if i > until_at:
            step = Step(stage, "stop", f"after --until {order[until_at]}", key)
        elif stage.name == "report":
            step = Step(stage, "build", "always rebuilt from the stages' outputs", key)
        elif i < start_at:
            if not old or old.get("status") != "done":
                raise CaiError(f"--from {order[start_at]}: the earlier stage '{stage.name}' has not finished; "
                               "run without --from first")
            stale = manifest.changes(old, key) if old.get("key") != manifest.digest(key) else []
            step = Step(stage, "skip", "before --from" + (f" (kept, though changed: {', '.join(stale[:3])})"
                                                          if stale else ""), key)
        elif forced_from is not None and i >= forced_from:
            step = Step(stage, "redo" if old or stage.folder.exists() else "run",
                        "--force" if i == forced_from else f"after forced {order[forced_from]}", key)
        elif waits_on and not (old or stage.folder.exists()):
            step = Step(stage, "run", "new", key)
        elif waits_on:
            many = len(waits_on) > 1
            step = Step(stage, "redo", f"input{'s' if many else ''} {', '.join(waits_on)} run{'' if many else 's'} again",
                        key)
        elif old is None:
            foreign = stage.folder.exists() and any(stage.folder.iterdir())
            step = Step(stage, "redo" if foreign else "run",
                        "its folder has no stage manifest" if foreign else "new", key)
        elif old.get("key") == manifest.digest(key):
            if old.get("status") == "done":
                step = Step(stage, "skip", f"done ({duration(old.get('seconds'))})", key)
            else:
                step = Step(stage, "resume" if stage.resumable else "redo",
                            "interrupted; continues where it stopped" if stage.resumable
                            else "interrupted; restarts (it keeps no partial state)", key)
        else:
            what = manifest.changes(old, key)
            step = Step(stage, "redo", "changed: " + ", ".join(what[:6]) + (" …" if len(what) > 6 else ""), key)
        if step.action not in ("skip", "stop"):
            scheduled.add(stage.name)
        if old and old.get("status") == "done":
            step.estimate = old.get("seconds")
        steps.append(step)
    return steps


_CONSTITUTIONS: dict[tuple, object] = {}


def constitution(spec: str, principles_dir: str | None):
    """The constitution a stage names, loaded once per `cai run` (parsing every principle file
    took ~0.2 s per load, and each stage's key needs it twice)."""
    from cai.sl.pipeline import resolve_constitution

    key = (spec, principles_dir)
    if key not in _CONSTITUTIONS:
        _CONSTITUTIONS[key] = resolve_constitution(spec, principles_dir)
    return _CONSTITUTIONS[key]


def stage_key(stage: Stage, run: Path) -> dict:
    """A stage's config (without volatile fields, paths inside the run folder written ``RUN/...``,
    so a moved or copied run folder is not redone) and its inputs: each earlier stage's
    ``output_id`` and each external file's fingerprint (the constitution's content hash)."""
    inputs: dict[str, str] = {}
    for need in stage.needs:
        upstream = manifest.read(stage.folder.parent / need)
        inputs[f"stage:{need}"] = (upstream or {}).get("output_id") or "missing"
    for role, spec in stage.files.items():
        if role == "constitution":
            inputs[role] = constitution(spec, _principles_dir(stage)).hash
        else:
            inputs[role] = manifest.fingerprint(spec)
    return {"config": _run_relative(manifest.config_dump(stage.config), str(run)), "inputs": inputs}


def _run_relative(data, run: str):
    """``data`` with every string path under ``run`` written as ``RUN/...``."""
    if isinstance(data, dict):
        return {k: _run_relative(v, run) for k, v in data.items()}
    if isinstance(data, list):
        return [_run_relative(v, run) for v in data]
    if isinstance(data, str) and (data == run or data.startswith(run + "/")):
        return "RUN" + data[len(run):]
    return data


def _principles_dir(stage: Stage) -> str | None:
    cfg = stage.config
    if isinstance(cfg, dict):  # eval's {"behavior", "reward_model"}, humans' {"humans", "agreement"}
        cfg = cfg.get("behavior") or cfg.get("agreement")
    return getattr(cfg, "principles_dir", None)


def run_loop(recipe_path: str, *, out: str | None = None, start: str | None = None, until: str | None = None,
             force: str | None = None, dry_run: bool = False, console: Console | None = None) -> dict:
    """Run (or continue) the loop a recipe describes; returns ``{"rounds": [...], "seconds": s}``.

    Raises CaiError on a bad recipe (naming ``stage.field``) before any model loads, and
    :class:`~cai.loop.stages.HumansNeeded` (exit code 3) when the humans stage waits for labels.
    """
    console = console or Console()
    _CONSTITUTIONS.clear()  # files may have changed since an earlier call in this process
    from cai.principles.library import find_recipe

    recipe_path = str(find_recipe(recipe_path))  # recipes/X.yaml from an install: the shipped recipe
    recipe = load_recipe(recipe_path, {"out": out})
    rounds = recipe.loop.rounds
    sel = Selection(Selection.parse(start, "--from", rounds), Selection.parse(until, "--until", rounds),
                    Selection.parse(force, "--force", rounds))
    run = Path(recipe.out)
    first = _round(recipe, run, 1)
    stages = build_stages(recipe, first, recipe_path)  # every block validated before anything is written
    sel.check([s.name for s in stages])
    check_inputs(stages, run, recipe_path)
    check_stage_inputs(stages, run, recipe_path)  # every row and column, before stage 1 (and in --dry-run)
    if run.exists() and not run.is_dir():
        raise CaiError("the run folder is a file", path=str(run))
    if dry_run:
        steps = plan_round(stages, first, run, sel)
        console_view.print_plan(console, first, steps, rounds)
        if rounds > 1:
            later = "round 2 is" if rounds == 2 else f"rounds 2-{rounds} are"
            console.print(f"{later} planned when the round before ends (prompts and starting policy come from it)",
                          highlight=False, soft_wrap=True)
        return {"rounds": [{"round": 1, "plan": [(s.stage.name, s.action, s.reason) for s in steps]}], "seconds": 0}
    if sel.start:
        plan_round(stages, first, run, sel)  # --from after unfinished stages: refused before RUN is made
    run.mkdir(parents=True, exist_ok=True)
    lock_run(run)
    manifest.empty_trash(run)
    _write_loop_json(run, recipe, recipe_path)
    started = time.monotonic()
    done: list[dict] = []
    rnd = first
    for index in range(1, rounds + 1):
        if index > 1:
            rnd = _next_round(recipe, run, index, rnd)
            stages = build_stages(recipe, rnd, recipe_path)
        steps = plan_round(stages, rnd, run, sel)
        console_view.print_plan(console, rnd, steps, rounds)
        rerun = " ".join(shlex.quote(a) for a in ["cai", "run", recipe_path, *(["--out", out] if out else []),
                                                  *(["--until", until] if until else [])])
        result = _run_round(steps, rnd, run, sel, console, started, rerun)
        done.append(result)
        if result.get("stopped"):
            break
    total = time.monotonic() - started
    console_view.print_end(console, done, total, run)
    return {"rounds": done, "seconds": round(total, 2)}


def check_inputs(stages: list[Stage], run: Path, source: str) -> None:
    """Refuse a constitution that does not load, a missing prompt or human label file (or labeling
    page database without a route stage), or a missing local model (a path that starts with /, . or ~, or a .gguf file), before any stage runs; paths inside the run folder are made
    by earlier stages. Raises CaiError naming the stage, the role and the path."""
    inside = str(run.resolve()) + "/"
    for stage in stages:
        for role, spec in stage.files.items():
            if role == "constitution":
                try:
                    constitution(spec, _principles_dir(stage))
                except CaiError as exc:
                    raise CaiError(f"{stage.name}: {exc.format()}", path=source) from None
            if role == "db" and stage.needs:
                continue  # the labeling page of the route stage's pairs makes it
            if role not in ("prompts", "labels", "db") and not role.startswith("model:"):
                continue
            if role.startswith("model:") and not (spec.startswith(("/", ".", "~")) or spec.lower().endswith(".gguf")):
                continue  # a hub id or a known model name
            path = Path(spec).expanduser()
            if not path.exists() and not str(path.resolve()).startswith(inside):
                raise CaiError(f"{stage.name}: {role} {spec!r} does not exist (looked at {path.resolve()}; "
                               "a recipe names files relative to its own folder)", path=source)


def _round(recipe: Recipe, run: Path, index: int) -> Round:
    return Round(index, round_folder(run, index), recipe.prompts, recipe.models.policy, recipe.prompt_format,
                 recipe.prompt_column, recipe.id_column)


def _next_round(recipe: Recipe, run: Path, index: int, previous: Round) -> Round:
    """Round ``index`` starts from the previous round's trained policy, on the recipe's prompts plus
    (``loop.feed_failures``) the probes that policy still fails, written to RUN/round-k/prompts.jsonl
    with the probe each row came from."""
    from cai.data.prompts import PromptReader

    prev_folder = previous.folder
    rnd = _round(recipe, run, index)
    rnd.policy = trained_policy(recipe, previous)
    rows = [{"id": row.id, "messages": row.messages, "source": {"prompts": row.source}}
            for row in PromptReader(recipe.prompts, recipe.prompt_format, recipe.prompt_column, recipe.id_column)]
    added = (round_failures(prev_folder, f"round-{previous.index}", recipe.loop.max_new_prompts)
             if recipe.loop.feed_failures else [])
    for row in added:
        s = row["source"]
        rows.append({"id": f"probe:{s['suite']}:{s['probe']}:{s['variant']}", **row})
    rnd.folder.mkdir(parents=True, exist_ok=True)
    prompts = rnd.folder / "prompts.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    if not prompts.exists() or prompts.read_text(encoding="utf-8") != text:
        write_atomic(prompts, [text])
    write_atomic(rnd.folder / "round.json", [json.dumps({
        "round": index, "previous_round": str(prev_folder), "policy": rnd.policy,
        "prompts": str(prompts), "recipe_prompts": len(rows) - len(added), "failed_probes_added": len(added),
    }, indent=2) + "\n"])
    rnd.prompts, rnd.prompt_format, rnd.prompt_column, rnd.id_column = str(prompts), "jsonl", "prompt", "id"
    return rnd


def _write_loop_json(run: Path, recipe: Recipe, recipe_path: str) -> None:
    write_atomic(run / "loop.json", [json.dumps({
        "recipe": str(recipe_path), "settings": recipe.model_dump(mode="json"),
        "stages": [n for n in STAGES if n == "report" or getattr(recipe, n, None) is not None],
    }, indent=2, ensure_ascii=False) + "\n"])


def _run_round(steps: list[Step], rnd: Round, run: Path, sel: Selection, console: Console,
               loop_started: float, rerun: str) -> dict:
    """Run a round's planned steps; on Ctrl-C or a humans pause, say the command that continues
    (``rerun``: without --from and --force, which would redo finished work again)."""
    out: dict = {"round": rnd.index, "folder": str(rnd.folder), "stages": []}
    todo = [s for s in steps if s.action not in ("skip", "stop")]
    n = len(steps)
    for k, step in enumerate(steps, 1):
        name = step.stage.name
        entry = {"stage": name, "action": step.action, "reason": step.reason}
        out["stages"].append(entry)
        if step.action != "skip":
            console_view.header(console, rnd, k, n, step, loop_started, todo)
            t0 = time.monotonic()
            try:
                summary = _execute(step, rnd, run)
            except KeyboardInterrupt:
                again = "continues where it stopped" if step.stage.resumable else "starts over"
                console.print(f"cai run: interrupted in {name}; to continue ({name} {again}, finished stages "
                              f"are skipped): {rerun}", highlight=False, markup=False, soft_wrap=True)
                raise
            except HumansNeeded:
                console.print(f"cai run: paused at {name} (round {rnd.index}); once people have labeled, continue "
                              f"with: {rerun}", highlight=False, markup=False, soft_wrap=True)
                raise
            except CaiError as exc:  # library errors name a command's flags; the recipe has fields
                raise in_recipe_words(exc, name) from None
            entry["seconds"] = round(time.monotonic() - t0, 2)
            console.print(f"{'':2}✓ {name} {duration(entry['seconds'])}: {console_view.brief(name, summary)}",
                          highlight=False, markup=False, soft_wrap=True)
            gc.collect()
        if sel.until and sel.until == (rnd.index, name):
            out["stopped"] = f"--until {name}"
            break
    return out


def _execute(step: Step, rnd: Round, run: Path) -> dict:
    stage = step.stage
    if stage.name == "report":
        return stage.run(stage)
    if step.action == "redo" or (step.action == "run" and stage.folder.exists()):
        manifest.discard(stage.folder, run)
    data = manifest.started(stage.folder, stage.name, rnd.index, stage_key(stage, run))  # inputs just finished
    t0 = time.monotonic()
    summary = stage.run(stage)
    manifest.finished(stage.folder, data, time.monotonic() - t0, _jsonable(summary))
    return summary


def _jsonable(summary) -> dict:
    return json.loads(json.dumps(summary if isinstance(summary, dict) else {"result": summary}, default=str))
