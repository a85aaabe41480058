"""`cai eval behavior`: run the probe suites on a model (and a baseline), judge every response,
and report per suite the rate that matters with its n and a 95% interval (Wilson for shares, a
bootstrap for the length ratio; :mod:`cai.evals.verdicts`), the detector's and the judge's rates
side by side with the judge's health, the difference to the baseline with its direction, and a
pairwise win rate judged by the constitution.

The flow: generate (one batched call per suite per turn, :mod:`cai.evals.generation`) or read
responses; the detector judges every run; the judge model (if given) answers every run's question
in one ``score_choices`` call and every comparison (both orders) in another; the constitution's
labeler compares candidate and baseline per probe; rates and intervals; ``summary.json``,
``probes.jsonl`` and ``report.html`` in the output folder. Sampling is greedy and the bootstrap
seeded by default, so a rerun gives the same numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cai import __version__
from cai.backends import Backend, load_backend
from cai.core.errors import CaiError
from cai.evals import rules
from cai.evals.config import BehaviorConfig
from cai.evals.generation import run_suite
from cai.evals.judge import Comparison, ask_compare, ask_yes_no
from cai.evals.responses import read_responses
from cai.evals.rules import ProbeRun
from cai.core.rates import share_of
from cai.evals.verdicts import change, diff_of, side_summary
from cai.evals.suites import KINDS, LoadedSuite, check_principle_ids, load_suites
from cai.core.runs import write_atomic


def judge_runs(runs: list[ProbeRun], backend: Backend | None) -> dict:
    """Detector on every run; with a judge backend, all yes/no questions in one ``score_choices``
    call and all comparisons in another. Sets each run's ``fail`` and ``value``. A judgement that
    fails (NaN, label mass below the floor, no labels) is kept as ``judge.failed`` with ``p_fail``
    None, never as a verdict. Returns the call counts and, with a judge, its ``judge_health``
    (:class:`cai.judge.health.JudgeHealth` as a dict)."""
    yes_no, compares = [], []
    for run in runs:
        run.detector = rules.run_detector(run)
        if backend is not None:
            item = rules.judge_item(run)
            (compares if isinstance(item, Comparison) else yes_no).append((run, item))
    calls, health = 0, None
    if backend is not None:
        from cai.judge import Judge

        judge = Judge(backend)
        model = backend.config.model

        def key(run: ProbeRun) -> str:
            return f"{run.model}:{run.suite.name}/{run.probe.id}"

        if yes_no:
            calls += 1
            ps = ask_yes_no(backend, [item for _, item in yes_no], judge, [key(r) for r, _ in yes_no])
            failures = dict(judge.failures)
            for i, ((run, (_, question)), p) in enumerate(zip(yes_no, ps, strict=True)):
                ok = p == p  # NaN: the judgement failed
                run.judge = {"model": model, "question": question, "p_fail": p if ok else None,
                             **({} if ok else {"failed": failures.get(i, "failed judgement")})}
        if compares:
            calls += 1
            got = ask_compare(backend, [item for _, item in compares], judge, [key(r) for r, _ in compares])
            for (run, item), r in zip(compares, got, strict=True):
                run.judge = {"model": model, "question": item.question, "p_fail": None, "failed": r["failed"]} \
                    if "failed" in r else {"model": model, "question": item.question, "p_fail": r["p_x"],
                                           "p_neutral_first": r["p_x_first"], "p_neutral_second": r["p_x_second"]}
        health = judge.health.to_dict()
    for run in runs:
        rules.decide(run)
    return {"judge_calls": calls, "judged": len(yes_no) + len(compares), "judge_health": health}


def pairwise(candidates: list[ProbeRun], baselines: list[ProbeRun], backend: Backend, config: BehaviorConfig):
    """P(candidate's response is better) per probe, judged by the constitution's preference questions
    (the probe's own principles where the constitution has them), both orders, averaged over the
    probe's variants. The prompt shown is the candidate's conversation before its last response.
    Returns ``({(suite, probe): p}, constitution)``."""
    from cai.feedback.config import LabelOptions
    from cai.feedback.labeler import Labeler, feedback_principles
    from cai.data.pairs import PreferencePair
    from cai.sl.pipeline import resolve_constitution

    constitution = resolve_constitution(config.constitution, config.principles_dir)
    feedback_principles(constitution)
    by_key = {(r.suite.name, r.probe.id): r for r in baselines}
    pairs, owners, ids = [], [], {}
    for cand in candidates:
        base = by_key.get((cand.suite.name, cand.probe.id))
        if base is None:
            continue
        for variant, conv in cand.conversations.items():
            if variant not in base.conversations:
                continue
            pair = PreferencePair(prompt=conv[:-1], chosen=[conv[-1]], rejected=[base.conversations[variant][-1]],
                                  source="eval")
            pairs.append(pair)
            owners.append((cand.suite.name, cand.probe.id))
            ids[pair.id] = set(cand.probe.principles)

    class ProbeLabeler(Labeler):
        def principles(self, pair):
            own = [p for p in self.picker.principles if p.id in ids.get(pair.id, ())]
            return own or super().principles(pair)

    labeler = ProbeLabeler(constitution, backend, LabelOptions(few_shot=config.few_shot, principles_dir=config.principles_dir))
    to_label = [p for p in pairs if not p.identical]
    labeled = {p.id: p for p in labeler.label(to_label, backend.config.model)} if to_label else {}
    per_probe: dict[tuple, list[float]] = {}
    for pair, key in zip(pairs, owners):
        if pair.identical:
            p = 0.5
        else:
            got = labeled[pair.id]
            p = got.p_chosen if got.chosen_text == pair.chosen_text else 1.0 - got.p_chosen
        per_probe.setdefault(key, []).append(p)
    return {k: sum(v) / len(v) for k, v in per_probe.items()}, constitution


def _rate(values: list[float], config: BehaviorConfig) -> dict | None:
    """Win probabilities' mean with a Wilson interval (values in [0, 1])."""
    return share_of(values)


def summarize_suite(suite: LoadedSuite, cands: list[ProbeRun], bases: list[ProbeRun] | None,
                    wins: dict | None, config: BehaviorConfig, health: dict | None = None) -> dict:
    """One suite's results: candidate (and baseline) rates with the detector's and the judge's side
    by side, the difference (with its direction: better, worse or no clear change), the win rate."""
    info = KINDS[suite.suite.kind]
    out = {"suite": suite.name, "version": suite.suite.version, "kind": suite.suite.kind, "metric": info.metric,
           "higher_is_better": info.higher_is_better, "direction": "higher is better" if info.higher_is_better
           else "lower is better", "numeric": info.numeric, "probes": len(cands),
           "candidate": side_summary(cands, info, config.n_boot, config.seed, health), "baseline": None,
           "diff": None, "change": None, "win_rate": None}
    if bases:
        out["baseline"] = side_summary(bases, info, config.n_boot, config.seed, health)
        by_id = {r.probe.id: r for r in bases}
        paired = [(c.value, by_id[c.probe.id].value) for c in cands if c.probe.id in by_id]
        if paired:
            out["diff"] = diff_of([a for a, _ in paired], [b for _, b in paired], info.numeric, config.n_boot,
                                  config.seed)
            out["change"] = change(out["diff"], info.higher_is_better)
    if wins:
        ps = [wins[(suite.name, c.probe.id)] for c in cands if (suite.name, c.probe.id) in wins]
        if ps:
            out["win_rate"] = {**_rate(ps, config), "wins": sum(p > 0.5 for p in ps),
                               "ties": sum(p == 0.5 for p in ps), "losses": sum(p < 0.5 for p in ps)}
    return out


def _constitution_or_none(config: BehaviorConfig):
    from cai.sl.pipeline import resolve_constitution

    try:
        return resolve_constitution(config.constitution, config.principles_dir)
    except CaiError:
        return None


def _limited(suites: list[LoadedSuite], limit: int | None) -> list[LoadedSuite]:
    if limit is None:
        return suites
    return [LoadedSuite(s.suite.model_copy(update={"probes": s.suite.probes[:limit]}), s.path, s.sha256) for s in suites]


class _Models:
    """The backends of one evaluation, each distinct config loaded once: a baseline that is also
    the judge (or a candidate that is) is not loaded twice. A backend is closed as soon as no later
    role needs it; backends passed in by the caller are never closed here."""

    def __init__(self, needed: list):
        self.needed = [c.model_dump_json() if c is not None else None for c in needed]  # in the order of use
        self.loaded: dict[str, Backend] = {}
        self.loads = 0

    def get(self, cfg) -> Backend:
        key = cfg.model_dump_json()
        if key not in self.loaded:
            self.loaded[key] = load_backend(cfg)
            self.loads += 1
        return self.loaded[key]

    def done(self, cfg) -> None:
        """``cfg``'s role is over: close its backend unless a later role uses the same config."""
        if cfg is None:
            return
        key = cfg.model_dump_json()
        self.needed.remove(key)
        if key in self.loaded and key not in self.needed:
            self.loaded.pop(key).close()

    def close(self) -> None:
        for backend in self.loaded.values():
            backend.close()
        self.loaded.clear()


def _runs(backend_cfg, responses, suites, model: str, config: BehaviorConfig, stats: dict,
          backend: Backend | None, models: _Models | None = None) -> tuple[list[ProbeRun], list[str], dict]:
    if responses is not None:
        runs, skipped = read_responses(responses, suites, model)
        return runs, skipped, {"responses": str(responses)}
    owned = backend is None
    if owned:
        backend = models.get(backend_cfg) if models is not None else load_backend(backend_cfg)
    try:
        runs = []
        for suite in suites:
            runs += run_suite(backend, suite, config.sampling, model, stats)
        return runs, [f"{model}: {why}" for why in stats.get("rejected", [])], backend.describe()
    finally:
        if owned and models is None:
            backend.close()


def run_behavior(config: BehaviorConfig, *, backend: Backend | None = None, baseline: Backend | None = None,
                 judge: Backend | None = None) -> dict:
    """Run, judge and report; returns the summary (also ``OUT/summary.json``). Loaded backends may
    be passed in (tests, notebooks); otherwise each is loaded from the config and closed after use."""
    started = time.perf_counter()
    suites = _limited(load_suites(config.suites or None), config.limit)
    check_principle_ids(suites, config.principles_dir)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    gen: dict = {"candidate": {}, "baseline": {}}
    # Roles in order of use; a config used by several roles (baseline = judge) is loaded once.
    roles = [config.model if backend is None and config.responses is None else None,
             config.baseline if baseline is None and config.baseline_responses is None else None,
             config.judge if judge is None else None]
    models = _Models(roles)
    try:
        cands, skipped, cand_desc = _runs(config.model, config.responses, suites, "candidate", config,
                                          gen["candidate"], backend, models)
        models.done(roles[0])
        bases, base_desc = None, None
        if config.baseline is not None or config.baseline_responses is not None or baseline is not None:
            bases, more, base_desc = _runs(config.baseline, config.baseline_responses, suites, "baseline", config,
                                           gen["baseline"], baseline, models)
            skipped += more
        models.done(roles[1])
        if judge is None and config.judge is not None:
            judge = models.get(config.judge)
        constitution = wins = None
        judge_desc = judge.describe() if judge is not None else None  # before close(): it may need the model
        judging = judge_runs(cands + (bases or []), judge)
        if judge is not None and bases:
            wins, constitution = pairwise(cands, bases, judge, config)
    finally:
        models.close()
    if constitution is None:  # not used for judging here, but named in the summary when it resolves
        constitution = _constitution_or_none(config)
    by_suite: dict[str, LoadedSuite] = {}
    for r in cands:
        by_suite.setdefault(r.suite.name, r.suite)
    results = []
    for name, suite in by_suite.items():
        mine = [r for r in cands if r.suite.name == name]
        theirs = [r for r in bases or [] if r.suite.name == name] or None
        results.append(summarize_suite(suite, mine, theirs, wins, config, judging.get("judge_health")))
    guarded = None
    if config.guard is not None:
        from cai.evals.guarded import guard_runs

        guarded = guard_runs(cands + (bases or []), config.guard)
    summary = {
        "cai_version": __version__, "candidate": cand_desc, "baseline": base_desc,
        "judge": judge_desc, "judge_health": judging.get("judge_health"),
        "sampling": config.sampling.model_dump(mode="json"), "bootstrap": {"n_boot": config.n_boot, "seed": config.seed},
        "constitution": {"ref": constitution.ref, "hash": constitution.hash} if constitution else None,
        "suites": {s.name: {"version": s.suite.version, "sha256": s.sha256, "path": s.path} for s in by_suite.values()},
        "results": results, "skipped_rows": skipped, "guard": guarded,
        "calls": {"generate": {k: v.get("calls", 0) for k, v in gen.items()},
                  **{k: v for k, v in judging.items() if k != "judge_health"}},
        "generation": gen, "seconds": round(time.perf_counter() - started, 2),
    }
    rows = "".join(json.dumps(r.row(), ensure_ascii=False) + "\n" for r in cands + (bases or []))
    write_atomic(out / "probes.jsonl", [rows])
    write_atomic(out / "summary.json", [json.dumps(summary, indent=2, ensure_ascii=False)])
    from cai.evals.report import behavior_report

    write_atomic(out / "report.html", [behavior_report(summary, cands + (bases or []), config.worst)])
    return summary
