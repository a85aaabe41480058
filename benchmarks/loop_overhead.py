"""What `cai run` costs on top of the stages it runs: the same loop (tiny random Llama, every
stage) run three ways in one process, side by side:

  direct   each stage's library function called in order, no manifests, no planning
  cai run  the loop from a recipe: plan, manifests, input fingerprints, discard, report
  rerun    `cai run` again on the finished folder: planning and fingerprinting only (all skip)

Prints seconds and the ratios cai run / direct and rerun / direct. Run:
    python benchmarks/loop_overhead.py [--prompts 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def recipe(tmp: Path, model: Path, out: Path, prompts: int) -> Path:
    import yaml

    (tmp / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"How do I fix thing number {i}?"}) + "\n"
                                               for i in range(prompts)))
    (tmp / "humans.jsonl").write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "A clear answer.",
                                                          "rejected": "No."}) + "\n" for i in range(4)))
    data = {
        "out": str(out), "prompts": str(tmp / "prompts.jsonl"), "models": {"policy": str(model)},
        "backend": {"backend": "transformers", "on_overflow": "truncate"},
        "generate": {"rounds": 1, "sampling": {"temperature": 0.8, "max_tokens": 12, "stop": ["e"]}},
        "sft": {"max_steps": 2, "batch_size": 2, "max_length": 256},
        "sample": {"n": 2, "sampling": {"temperature": 1.0, "max_tokens": 10}},
        "label": {"few_shot": 0},
        "humans": {"labels": str(tmp / "humans.jsonl")},
        "reward": {"max_steps": 2, "batch_size": 2, "max_length": 256},
        "ppo": {"max_steps": 2, "batch_size": 2, "mini_batch_size": 2, "max_new_tokens": 6, "ppo_epochs": 1,
                "quiet": True},
        "eval": {"behavior": {"limit": 1, "suites": ["harmful"], "sampling": {"max_tokens": 8}, "n_boot": 200},
                 "reward_model": {"suites": ["harmful"], "n_boot": 200}},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def direct(path: Path, out: Path) -> float:
    from cai.loop.recipe import load_recipe
    from cai.loop.runner import _round
    from cai.loop.stages import build_stages

    r = load_recipe(str(path), {"out": str(out)})
    started = time.perf_counter()
    for stage in build_stages(r, _round(r, out, 1), str(path)):
        stage.run(stage)
    return time.perf_counter() - started


def looped(path: Path, out: Path) -> float:
    from rich.console import Console

    from cai.loop.runner import run_loop

    started = time.perf_counter()
    run_loop(str(path), out=str(out), console=Console(file=open(os.devnull, "w")))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from cai.testing import build_tiny_llama

    tmp = Path(tempfile.mkdtemp(prefix="cai-loop-bench-"))
    try:
        model = build_tiny_llama(tmp / "model")
        path = recipe(tmp, model, tmp / "run", args.prompts)
        times: dict[str, list[float]] = {"direct": [], "cai run": [], "rerun": []}
        for k in range(args.repeats):  # alternate the order so neither always runs on a warm cache
            order = ("direct", "cai run") if k % 2 == 0 else ("cai run", "direct")
            for name in order:
                out = tmp / f"{name.replace(' ', '-')}-{k}"
                times[name].append(direct(path, out) if name == "direct" else looped(path, out))
                if name == "cai run":
                    times["rerun"].append(looped(path, out))
        best = {name: min(v) for name, v in times.items()}
        print(f"{args.prompts} prompts, every stage, tiny Llama, best of {args.repeats}:")
        for name, seconds in best.items():
            print(f"  {name:<8} {seconds:7.2f} s   {seconds / best['direct']:.3f}x direct")
        extra = best["cai run"] - best["direct"]
        print(f"  cai run adds {extra:.2f} s in all ({extra / 10:.2f} s per stage: keys, manifests, a full "
              "garbage collection after each stage); a constant, not a share of the stages' work")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
