"""The stages of one round of the loop: how each stage's config is built from the recipe (the
block the user wrote, plus the wiring the loop owns) and how it runs. Every stage calls the same
library function as its own command, so `cai run` and the commands one by one give the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cai.core.errors import CaiError
from cai.loop.execute import (  # noqa: F401  (HumansNeeded, failed_probes, round_failures: re-exported for the runner)
    HumansNeeded,
    failed_probes,
    round_failures,
    run_dpo,
    run_eval,
    run_generate,
    run_humans,
    run_label,
    run_redteam,
    run_mix,
    run_online,
    run_ppo,
    run_report,
    run_reward,
    run_route,
    run_sample,
    run_sft,
)
from cai.loop.recipe import (
    ONLINE,
    STAGES,
    HumansStage,
    Recipe,
    Stage,
    check_wired,
    deep_merge,
    validate_block,
)


@dataclass
class Round:
    """Where one round lives and what it starts from."""

    index: int
    """1-based round number."""
    folder: Path
    """RUN for round 1, RUN/round-k for later rounds."""
    prompts: str
    """The round's prompts: the recipe's, or RUN/round-k/prompts.jsonl (the recipe's plus failed probes)."""
    policy: str
    """The starting policy of the round: the recipe's, or the previous round's trained policy."""
    prompt_format: str
    prompt_column: str
    id_column: str | None


def backend(recipe: Recipe, model: str, block: dict | None = None) -> dict:
    """A BackendConfig mapping: the recipe's shared backend settings, the model, the block's own."""
    return deep_merge({**recipe.backend, "model": model}, block or {})


def trained_policy(recipe: Recipe, rnd: Round) -> str:
    """Where the round's trained policy is written."""
    for name in ("ppo", *ONLINE):
        if getattr(recipe, name) is not None:
            return str(rnd.folder / name / "policy")
    if recipe.dpo is not None:
        return str(rnd.folder / "dpo")
    return str(rnd.folder / "sft") if recipe.sft is not None else rnd.policy


def sft_or_start(recipe: Recipe, rnd: Round) -> tuple[str, list[str]]:
    """The policy after the optional SFT stage, and the stage it comes from."""
    return (str(rnd.folder / "sft"), ["sft"]) if recipe.sft is not None else (rnd.policy, [])


# Prompt settings the recipe gives once, at its top level, for generate, sample and ppo alike.
PROMPT_FIELDS = {f: f"from the recipe's top-level {f}, which generate, sample and ppo share: set it there"
                 for f in ("prompts", "prompt_format", "prompt_column", "id_column")}


def _prompt_fields(rnd: Round) -> dict:
    return {"prompts": rnd.prompts, "prompt_format": rnd.prompt_format, "prompt_column": rnd.prompt_column,
            "id_column": rnd.id_column}


def _model_files(**models: str) -> dict[str, str]:
    return {f"model:{role}": spec for role, spec in models.items()}


def build_stages(recipe: Recipe, rnd: Round, source: str | None) -> list[Stage]:
    """Every enabled stage of a round, in order, with validated configs. Raises CaiError naming
    ``stage.field`` (and the recipe file) on the first invalid or loop-owned field."""
    from cai.backends.base import BackendConfig

    check_wired("backend", recipe.backend, {"model": "models.policy, models.feedback and models.reward_base"}, source)
    validate_block(BackendConfig, {**recipe.backend, "model": recipe.models.policy}, "backend", source)
    out: list[Stage] = []
    for name in STAGES:
        block = getattr(recipe, name, None) if name != "report" else {}
        if block is None:
            continue
        stage = BUILDERS[name](recipe, rnd, dict(block), source)
        out.append(stage)
    return out


def _folder(rnd: Round, name: str) -> Path:
    return rnd.folder / name


# -- builders -------------------------------------------------------------------------------------

def _generate(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.sl import GenerateConfig

    check_wired("generate", block, {"out": "RUN/generate", "policy.model": "models.policy", **PROMPT_FIELDS}, source)
    data = deep_merge({"constitution": recipe.constitution, "principles_dir": recipe.principles_dir,
                       **_prompt_fields(rnd), "out": str(_folder(rnd, "generate")),
                       "sampling": {"seed": recipe.seed}}, block)
    data["policy"] = backend(recipe, rnd.policy, block.get("policy"))
    if block.get("critic") is not None or recipe.models.feedback:
        data["critic"] = backend(recipe, recipe.models.feedback or rnd.policy, block.get("critic"))
    cfg = validate_block(GenerateConfig, data, "generate", source)
    return Stage("generate", _folder(rnd, "generate"), cfg, run_generate, files={
        "prompts": cfg.prompts, "constitution": cfg.constitution, **_model_files(policy=rnd.policy)},
        resumable=True)


def _sft(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.train.config import SFTRecipe

    check_wired("sft", block, {"data": "RUN/generate", "out": "RUN/sft", "model": "models.policy"}, source)
    if recipe.generate is None:
        raise CaiError("sft: needs the generate stage (its revisions are the SFT data)", path=source)
    data = deep_merge({"data": str(_folder(rnd, "generate")), "model": rnd.policy, "out": str(_folder(rnd, "sft")),
                       "seed": recipe.seed}, block)
    cfg = validate_block(SFTRecipe, data, "sft", source)
    return Stage("sft", _folder(rnd, "sft"), cfg, run_sft, needs=["generate"], files=_model_files(base=rnd.policy))


def _sample(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.feedback import SampleConfig

    check_wired("sample", block, {"out": "RUN/sample", "policy.model": "the SFT model, or models.policy",
                                  **PROMPT_FIELDS}, source)
    policy, needs = sft_or_start(recipe, rnd)
    data = deep_merge({**_prompt_fields(rnd), "out": str(_folder(rnd, "sample")), "sampling": {"seed": recipe.seed}},
                      block)
    data["policy"] = backend(recipe, policy, block.get("policy"))
    cfg = validate_block(SampleConfig, data, "sample", source)
    return Stage("sample", _folder(rnd, "sample"), cfg, run_sample, needs=needs,
                 files={"prompts": cfg.prompts, **({} if needs else _model_files(policy=policy))}, resumable=True)


def _label(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.feedback import LabelConfig

    check_wired("label", block, {"pairs": "RUN/sample", "out": "RUN/label", "labeler.model": "models.feedback"}, source)
    if recipe.sample is None:
        raise CaiError("label: needs the sample stage (the pairs it labels)", path=source)
    feedback = recipe.models.feedback or recipe.models.policy
    data = deep_merge({"pairs": str(_folder(rnd, "sample")), "constitution": recipe.constitution,
                       "principles_dir": recipe.principles_dir, "out": str(_folder(rnd, "label")),
                       "seed": recipe.seed}, block)
    data["labeler"] = backend(recipe, feedback, block.get("labeler"))
    cfg = validate_block(LabelConfig, data, "label", source)
    return Stage("label", _folder(rnd, "label"), cfg, run_label, needs=["sample"],
                 files={"constitution": cfg.constitution, **_model_files(feedback=feedback)}, resumable=True)


def _route(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.data import RouteConfig

    check_wired("route", block, {"pairs": "RUN/label", "out": "RUN/route"}, source)
    data = deep_merge({"pairs": str(_folder(rnd, "label")), "out": str(_folder(rnd, "route")), "budget": 50,
                       "seed": recipe.seed}, block)
    cfg = validate_block(RouteConfig, data, "route", source)
    return Stage("route", _folder(rnd, "route"), cfg, run_route, needs=["label"])


def _humans(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    cfg = validate_block(HumansStage, block, "humans", source)
    if cfg.labels is None and cfg.db is None:
        if recipe.route is None:
            raise CaiError("humans: give labels (a human label file), db (the labeling page's SQLite file) "
                           "or add a route stage that picks pairs for people", path=source)
        cfg = cfg.model_copy(update={"db": str(rnd.folder / "human-labels.db")})
    from cai.feedback import AgreementConfig
    from cai.feedback.config import LabelOptions

    files = {"labels": cfg.labels} if cfg.labels else {"db": cfg.db}
    agree = None
    if cfg.agreement:  # its settings and constitution are part of the stage's key
        feedback = recipe.models.feedback or recipe.models.policy
        folder = _folder(rnd, "humans")
        # the human pairs are labeled the way the label stage labels (few-shot, orders, principles)
        options = {k: v for k, v in (recipe.label or {}).items() if k in LabelOptions.model_fields}
        agree = validate_block(AgreementConfig, {
            "principles_dir": recipe.principles_dir, "seed": recipe.seed, **options,
            "file": str(folder / "pairs"), "constitution": recipe.constitution,
            "labeler": backend(recipe, feedback, (recipe.label or {}).get("labeler")),
            "out": str(folder / "agreement.json")}, "humans.agreement", source)
        files.update({**_model_files(feedback=feedback), "constitution": recipe.constitution})
    stage = Stage("humans", _folder(rnd, "humans"), {"humans": cfg, "agreement": agree}, run_humans,
                  needs=["route"] if recipe.route else [], files=files)
    stage.extra = {"source": source}
    return stage


def _mix(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.data import MixConfig

    check_wired("mix", block, {"inputs": "RUN/generate, RUN/label and RUN/humans", "out": "RUN/mix"}, source)
    inputs, needs = [], []
    for stage, src, path in (("generate", "ai-revision", "generate/preferences"), ("label", "ai-feedback", "label"),
                             ("humans", "human", "humans/pairs")):
        if getattr(recipe, stage) is not None:
            inputs.append({"source": src, "path": str(rnd.folder / path)})
            needs.append(stage)
    data = deep_merge({"inputs": inputs, "out": str(_folder(rnd, "mix")), "seed": recipe.seed}, block)
    cfg = validate_block(MixConfig, data, "mix", source)
    return Stage("mix", _folder(rnd, "mix"), cfg, run_mix, needs=needs)


def _reward(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.train.config import RewardRecipe

    check_wired("reward", block, {"data": "RUN/mix", "out": "RUN/reward", "model": "models.reward_base"}, source)
    if recipe.mix is None:
        raise CaiError("reward: needs the mix stage (its train/test pairs)", path=source)
    base = recipe.models.reward_base or recipe.models.policy
    data = deep_merge({"data": str(_folder(rnd, "mix")), "model": base, "out": str(_folder(rnd, "reward")),
                       "seed": recipe.seed}, block)
    cfg = validate_block(RewardRecipe, data, "reward", source)
    return Stage("reward", _folder(rnd, "reward"), cfg, run_reward, needs=["mix"], files=_model_files(base=base))


def _ppo(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.train.ppo import PPOConfig

    check_wired("ppo", block, {"model": "the SFT model, or models.policy", "reward_model": "RUN/reward",
                               "out": "RUN/ppo", **PROMPT_FIELDS}, source)
    policy, needs = sft_or_start(recipe, rnd)
    data = deep_merge({"prompts": rnd.prompts, "prompt_format": rnd.prompt_format,
                       "prompt_column": rnd.prompt_column, "id_column": rnd.id_column, "model": policy,
                       "reward_model": str(_folder(rnd, "reward")), "out": str(_folder(rnd, "ppo")),
                       "seed": recipe.seed}, block)
    cfg = validate_block(PPOConfig, data, "ppo", source)
    return Stage("ppo", _folder(rnd, "ppo"), cfg, run_ppo, needs=needs + ["reward"],
                 files={"prompts": cfg.prompts, **({} if needs else _model_files(policy=policy))}, resumable=True)


def _online(recipe: Recipe, rnd: Round, block: dict, source, name: str) -> Stage:
    """``grpo``/``rloo``: the round's prompts and policy, the recipe's constitution and feedback model
    as the judge, RUN/reward as the reward-model reward (when the block uses it)."""
    from cai.train.online import OnlineConfig

    check_wired(name, block, {"model": "the SFT model, or models.policy", "out": f"RUN/{name}",
                              "algorithm": f"the block's name ({name})", "reward_model.path": "RUN/reward",
                              **PROMPT_FIELDS}, source)
    policy, needs = sft_or_start(recipe, rnd)
    judge = dict(block.get("constitution") or {})
    judge.setdefault("constitution", recipe.constitution)
    judge.setdefault("principles_dir", recipe.principles_dir)
    judge["feedback"] = backend(recipe, recipe.models.feedback or recipe.models.policy, judge.get("feedback"))
    data = deep_merge({"prompts": rnd.prompts, "prompt_format": rnd.prompt_format, "prompt_column": rnd.prompt_column,
                       "id_column": rnd.id_column, "model": policy, "out": str(_folder(rnd, name)),
                       "seed": recipe.seed}, {**block, "constitution": judge, "algorithm": name})
    if recipe.reward is not None:
        data.setdefault("reward_model", {})["path"] = str(_folder(rnd, "reward"))
    cfg = validate_block(OnlineConfig, data, name, source)
    if "reward-model" in cfg.reward_names:
        needs = needs + ["reward"]
    return Stage(name, _folder(rnd, name), cfg, run_online, needs=needs,
                 files={"prompts": cfg.prompts, "constitution": recipe.constitution,
                        **_model_files(judge=judge["feedback"]["model"]),
                        **({} if needs else _model_files(policy=policy))}, resumable=True)


def _dpo(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.train.config import DPORecipe

    check_wired("dpo", block, {"data": "RUN/mix", "out": "RUN/dpo", "model": "the SFT model, or models.policy"}, source)
    if recipe.mix is None:
        raise CaiError("dpo: needs the mix stage (its train/test pairs)", path=source)
    policy, needs = sft_or_start(recipe, rnd)
    data = deep_merge({"data": str(_folder(rnd, "mix")), "model": policy, "out": str(_folder(rnd, "dpo")),
                       "seed": recipe.seed}, block)
    cfg = validate_block(DPORecipe, data, "dpo", source)
    return Stage("dpo", _folder(rnd, "dpo"), cfg, run_dpo, needs=needs + ["mix"],
                 files={} if needs else _model_files(policy=policy))


def _eval(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    from cai.evals.config import BehaviorConfig, RewardAuditConfig

    unknown = set(block) - {"behavior", "reward_model"}
    if unknown:
        raise CaiError(f"eval.{min(unknown)}: unknown field (eval takes behavior and reward_model blocks)",
                       path=source)
    for part in ("behavior", "reward_model"):
        if block.get(part) is not None and not isinstance(block[part], dict):
            raise CaiError(f"eval.{part}: expected a mapping of `cai eval {part.replace('_', '-')}` fields", path=source)
    behavior_block = block.get("behavior") or {}
    judge = behavior_block.get("judge")
    if judge is not None and not isinstance(judge, str | dict):
        raise CaiError("eval.behavior.judge: expected a model name or a backend mapping", path=source)
    check_wired("eval.behavior", behavior_block, {"out": "RUN/eval/behavior", "model.model": "the trained policy",
                                                  "baseline.model": "the round's starting policy"}, source)
    trained = trained_policy(recipe, rnd)
    needs = [s for s in ("ppo", *ONLINE, "dpo", "sft") if getattr(recipe, s) is not None][:1]
    data = deep_merge({"out": str(rnd.folder / "eval" / "behavior"), "constitution": recipe.constitution,
                       "principles_dir": recipe.principles_dir, "seed": recipe.seed,
                       "sampling": {"temperature": 0.0, "max_tokens": 256, "seed": recipe.seed}}, behavior_block)
    data["model"] = backend(recipe, trained, behavior_block.get("model"))
    data["baseline"] = backend(recipe, rnd.policy, behavior_block.get("baseline"))
    if isinstance(behavior_block.get("judge"), str):  # judge: MODEL is enough
        data["judge"] = backend(recipe, behavior_block["judge"])
    elif behavior_block.get("judge") is not None:
        data["judge"] = backend(recipe, behavior_block["judge"].get("model", recipe.models.feedback or
                                                                      recipe.models.policy), behavior_block["judge"])
    behavior = validate_block(BehaviorConfig, data, "eval.behavior", source)
    audit = None
    if recipe.reward is not None and block.get("reward_model", {}) is not None:
        audit_block = block.get("reward_model") or {}
        check_wired("eval.reward_model", audit_block, {"reward_model": "RUN/reward", "out": "RUN/eval/reward-model"}, source)
        audit = validate_block(RewardAuditConfig, deep_merge(
            {"reward_model": str(_folder(rnd, "reward")), "out": str(rnd.folder / "eval" / "reward-model"),
             "seed": recipe.seed}, audit_block), "eval.reward_model", source)
        needs.append("reward")
    files = _model_files(baseline=rnd.policy, **({"judge": data["judge"]["model"]} if data.get("judge") else {}))
    if not needs:
        files.update(_model_files(candidate=trained))
    return Stage("eval", _folder(rnd, "eval"), {"behavior": behavior, "reward_model": audit}, run_eval,
                 needs=needs, files={**files, "constitution": recipe.constitution})


def _redteam(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    """Attack the round's trained policy: the attacker is ``block.attacker`` (default the
    feedback model, else the starting policy), the judge ``block.feedback`` (default the feedback
    model, else the starting policy; ``feedback: null`` for the detector alone)."""
    from cai.redteam import RedteamConfig

    check_wired("redteam", block, {"out": "RUN/redteam", "target.model": "the trained policy"}, source)
    trained = trained_policy(recipe, rnd)
    helper = recipe.models.feedback or recipe.models.policy
    data = deep_merge({"out": str(rnd.folder / "redteam"), "constitution": recipe.constitution,
                       "principles_dir": recipe.principles_dir}, {k: v for k, v in block.items()
                                                                   if k not in ("attacker", "target", "feedback")})
    for role, default in (("attacker", helper), ("feedback", helper)):
        given = block.get(role, default)
        if given is None:
            data[role] = None
        elif isinstance(given, str):
            data[role] = backend(recipe, given)
        else:
            data[role] = backend(recipe, given.get("model", default), given)
    data["target"] = backend(recipe, trained, block.get("target") if isinstance(block.get("target"), dict) else None)
    config = validate_block(RedteamConfig, data, "redteam", source)
    needs = [s for s in ("ppo", *ONLINE, "dpo", "sft") if getattr(recipe, s) is not None][:1]
    files = _model_files(attacker=config.attacker.model, **({"judge": config.feedback.model} if config.feedback else {}))
    if not needs:
        files.update(_model_files(candidate=trained))
    return Stage("redteam", _folder(rnd, "redteam"), config, run_redteam, needs=needs,
                 files={**files, "constitution": recipe.constitution})


def _report(recipe: Recipe, rnd: Round, block: dict, source) -> Stage:
    root = rnd.folder if rnd.index == 1 else rnd.folder.parent  # one report over every round so far
    return Stage("report", root, {"run": str(root)}, run_report)


BUILDERS = {"generate": _generate, "sft": _sft, "sample": _sample, "label": _label, "route": _route,
            "humans": _humans, "mix": _mix, "reward": _reward, "ppo": _ppo,
            "grpo": lambda *a: _online(*a, "grpo"), "rloo": lambda *a: _online(*a, "rloo"), "dpo": _dpo, "eval": _eval,
            "redteam": _redteam, "report": _report}
