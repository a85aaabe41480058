"""GRPO with the constitution as judge: what the judge costs, and how pointwise and groupwise compare.

Two figures, ratios side by side in one run:

1. GRPO step time (TRL's GRPOTrainer through `cai train grpo`'s code, same policy, prompts and
   sampling) with three rewards: the constitution judge (pointwise, the judge model on cai's
   transformers backend), a reward model (a sequence-classification head on the judge's own
   backbone, so the two score with the same network size) and a constant reward (the trainer
   alone). Mean seconds per step after ``--warmup`` steps, and the judge's overhead as ratios.
2. Pointwise vs groupwise judging of the human-labelled pairs in ``recipes/loop-human-labels.jsonl``
   (each pair is a group of K = 2): seconds and forward passes per judged completion, and agreement
   with the people's choice (the chosen response scores higher; ties count half), with its n.

Prefix reuse across a group (vLLM's prefix cache on vs off) is measured by ``benchmarks/judge_prefix.py``.

    python benchmarks/grpo.py                               # tiny random policy and judge
    python benchmarks/grpo.py --judge smollm2-135m-instruct # the embedded model as judge (and RM backbone)
    python benchmarks/grpo.py --steps 6 --k 8 --batch-size 16 --max-completion-length 32

A random-weight judge agrees with people by chance; pass a real one (``--judge``) for part 2's
agreement figure. Times are wall-clock on this machine's CPU (or the GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Constant:
    """A judge that answers 0.5 without a model: GRPO's cost with a free reward."""

    def __init__(self):
        self.stats = Counter()

    def rate(self, prompts, responses):
        return [0.5] * len(responses)

    def provenance(self):
        return {"judge": "constant 0.5"}


def build_models(tmp: Path, args) -> tuple[Path, str, Path, Path]:
    """(policy, judge, reward model on the judge's backbone, prompts)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cai.models import resolve_model
    from cai.testing import build_tiny_llama
    from cai.testing.ppo import build_tiny_policy, write_prompts

    policy = build_tiny_policy(tmp / "policy", hidden_size=args.policy_hidden)
    judge = args.judge or str(build_tiny_llama(tmp / "judge", hidden_size=args.hidden, num_layers=args.layers))
    judge = resolve_model(judge)
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(judge, num_labels=1, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(judge)
    rm.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rm.save_pretrained(tmp / "rm")
    tok.save_pretrained(tmp / "rm")
    return policy, judge, tmp / "rm", write_prompts(tmp / "prompts.jsonl", n=max(8, args.batch_size))


def judge_cfg(judge: str, args) -> dict:
    return {"constitution": str(ROOT / "constitution/default.yaml"), "few_shot": 0,
            "principles_per_completion": args.principles,
            "feedback": {"backend": "transformers", "model": judge, "dtype": "float32", "on_overflow": "truncate",
                         "max_model_len": args.max_model_len}}


def step_times(tmp: Path, policy: Path, judge: str, rm: Path, prompts: Path, args) -> dict[str, float]:
    """Mean seconds per GRPO step after the warm-up steps, per reward."""
    from cai.train.online import OnlineConfig, train_online

    out = {}
    for name in ("constant", "reward-model", "constitution"):
        cfg = OnlineConfig(model=str(policy), prompts=str(prompts), out=str(tmp / f"run-{name}"),
                           max_steps=args.warmup + args.steps, num_generations=args.k, batch_size=args.batch_size,
                           max_completion_length=args.max_completion_length, save_steps=10_000, quiet=True,
                           rewards=["reward-model" if name == "reward-model" else "constitution"],
                           reward_model={"path": str(rm)}, constitution=judge_cfg(judge, args))
        train_online(cfg, judge=Constant() if name == "constant" else None)
        rows = [json.loads(line) for line in (tmp / f"run-{name}" / "metrics.jsonl").read_text().splitlines()]
        timed = [r["time/step_s"] for r in rows[args.warmup:]]
        out[name] = sum(timed) / len(timed)
    return out


def agreement(judge: str, args) -> dict[str, dict]:
    """Pointwise and groupwise judging of the human pairs: cost per completion and agreement."""
    from cai.backends import BackendConfig, load_backend
    from cai.data.pairs import read_pairs
    from cai.train.online.config import ConstitutionReward
    from cai.train.online.judge_link import open_judge

    pairs = list(read_pairs(Path(args.human_labels)))
    backend = load_backend(BackendConfig.model_validate(judge_cfg(judge, args)["feedback"]))
    results = {}
    try:
        for mode in ("pointwise", "groupwise"):
            link = open_judge(ConstitutionReward(**{**judge_cfg(judge, args), "mode": mode, "feedback": None}),
                              backend=backend)
            prompts = [[m.model_dump() for m in p.prompt] for p in pairs]
            started = time.perf_counter()
            if mode == "pointwise":
                scores = link.rate(prompts + prompts, [p.chosen_text for p in pairs] + [p.rejected_text for p in pairs])
                margins = [c - r for c, r in zip(scores[:len(pairs)], scores[len(pairs):])]
            else:
                groups = link.rank(prompts, [[p.chosen_text, p.rejected_text] for p in pairs])
                margins = [g.scores[0] - g.scores[1] for g in groups]
            seconds = time.perf_counter() - started
            completions = 2 * len(pairs)
            agree = sum(1.0 if m > 1e-9 else 0.5 if abs(m) <= 1e-9 else 0.0 for m in margins)
            results[mode] = {"ms_per_completion": 1000 * seconds / completions,
                             "passes_per_completion": link.stats["prompts"] / completions,
                             "agreement": agree / len(pairs), "n": len(pairs)}
    finally:
        backend.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default=None, help="Judge model (folder or known name); default: a tiny random Llama.")
    ap.add_argument("--hidden", type=int, default=128, help="Tiny judge: width.")
    ap.add_argument("--layers", type=int, default=2, help="Tiny judge: layers.")
    ap.add_argument("--policy-hidden", type=int, default=64, help="Tiny policy: width.")
    ap.add_argument("--steps", type=int, default=4, help="Timed GRPO steps per reward.")
    ap.add_argument("--warmup", type=int, default=1, help="Untimed first steps.")
    ap.add_argument("--k", type=int, default=4, help="Completions per prompt (num_generations).")
    ap.add_argument("--batch-size", type=int, default=8, help="Completions per step.")
    ap.add_argument("--max-completion-length", type=int, default=16)
    ap.add_argument("--principles", type=int, default=1, help="Principles per judged completion.")
    ap.add_argument("--max-model-len", type=int, default=1024, help="Judge context (prompts are cut from the left).")
    ap.add_argument("--human-labels", default=str(ROOT / "recipes/loop-human-labels.jsonl"))
    ap.add_argument("--skip-steps", action="store_true", help="Only the pointwise/groupwise figure.")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        policy, judge, rm, prompts = build_models(tmp, args)
        print(f"judge {judge}; policy {policy.name} (width {args.policy_hidden}); K={args.k}, "
              f"{args.batch_size} completions/step, {args.max_completion_length} tokens max")
        if not args.skip_steps:
            t = step_times(tmp, policy, judge, rm, prompts, args)
            print(f"\nGRPO seconds per step (mean of {args.steps} after {args.warmup} warm-up):")
            for name in ("constant", "reward-model", "constitution"):
                print(f"  {name:13s} {t[name]:8.3f} s   {t[name] / t['constant']:6.2f}x constant")
            print(f"judge overhead: {t['constitution'] / t['constant']:.2f}x the trainer alone, "
                  f"{t['constitution'] / t['reward-model']:.2f}x the reward model")
        r = agreement(judge, args)
        print(f"\npointwise vs groupwise on {r['pointwise']['n']} human-labelled pairs (K=2 per group):")
        print(f"  {'mode':10s} {'ms/completion':>14s} {'passes/completion':>18s} {'agreement':>10s}")
        for mode, v in r.items():
            print(f"  {mode:10s} {v['ms_per_completion']:14.1f} {v['passes_per_completion']:18.2f} "
                  f"{v['agreement']:10.3f} (n={v['n']})")
        print(f"groupwise/pointwise cost per completion: "
              f"{r['groupwise']['ms_per_completion'] / r['pointwise']['ms_per_completion']:.2f}x")


if __name__ == "__main__":
    main()
