"""Reward-model training throughput: cai's soft-label trainer vs plain TRL RewardTrainer, side by side.

Builds a small random-weight Llama locally (default ~4M parameters, fp32) and a synthetic
preference dataset with soft labels and per-pair weights, then trains a reward model on it with

- ``trl``: TRL's own RewardTrainer on the same pairs without the extra columns (hard labels);
- ``cai``: :class:`cai.train.reward.SoftLabelRewardTrainer` with ``p_chosen`` and ``weight``;

same model, batch size, steps, seed and settings. The runs alternate (trl, cai, cai, trl, ...)
over several repeats so drift in machine load hits both alike; only ``trainer.train()`` is timed
(tokenization and model loading are not). It prints pairs/s per run, then best-of and median
wall-clock throughput and median throughput per CPU-second of each, with the ratio cai/trl
(target ≥ 0.9: the soft loss and the two extra columns should cost next to nothing). On a shared
machine the best-of figure and the CPU-time figure are the ones to trust.

    python benchmarks/reward_training.py                         # defaults, ~1-2 minutes on 2 cores
    python benchmarks/reward_training.py --steps 40 --repeats 5 --hidden 512 --layers 8
    python benchmarks/reward_training.py --threads 1        # steadier on a busy shared machine
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

WORDS = ("the a model answer question response helpful assistant explain why how what good clear "
         "because and or but if then so this that it you we they polite rude safe").split()


def pairs(n: int, seed: int = 0):
    """Preference pairs of a few dozen tokens, with soft labels and weights."""
    from cai.data.pairs import PreferencePair

    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(12, 30))
        out.append(PreferencePair(
            prompt=[{"role": "user", "content": f"Question {i}: " + " ".join(rng.choices(WORDS, k=10))}],
            chosen=[{"role": "assistant", "content": " ".join(words + ["polite"])}],
            rejected=[{"role": "assistant", "content": " ".join(words + ["rude"])}],
            source=rng.choice(["ai-revision", "ai-feedback", "human"]),
            p_chosen=rng.choice([1.0, 0.9, 0.75]), weight=rng.choice([0.5, 1.0, 2.0]),
        ))
    return out


def run_once(kind: str, model: Path, data, args, out: Path) -> tuple[float, float]:
    """Train ``args.steps`` steps; returns (wall, CPU) seconds spent in ``trainer.train()``."""
    from trl import RewardConfig, RewardTrainer

    from cai.train.config import RewardRecipe, trl_config
    from cai.train.reward import SoftLabelRewardTrainer

    recipe = RewardRecipe(model=str(model), data="-", out=str(out), max_steps=args.steps, batch_size=args.batch_size,
                          learning_rate=1e-4, gradient_checkpointing=False, logging_steps=args.steps,
                          max_length=None, trl={"disable_tqdm": True})
    config = trl_config(RewardConfig, recipe)
    if args.device == "cpu":
        config.use_cpu = True
    trainer_cls = SoftLabelRewardTrainer if kind == "cai" else RewardTrainer
    dataset = data["cai"] if kind == "cai" else data["trl"]
    trainer = trainer_cls(model=str(model), args=config, train_dataset=dataset)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    del trainer
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=256, help="training pairs")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    ap.add_argument("--repeats", type=int, default=6, help="runs of each trainer (alternating)")
    ap.add_argument("--hidden", type=int, default=256, help="model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--device", default="auto", help="auto (cuda if available) or cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    from cai.testing import build_tiny_llama
    from cai.train.data import preference_dataset

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("datasets").setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()

    tmp = Path(tempfile.mkdtemp(prefix="cai-bench-rm-"))
    model = build_tiny_llama(tmp / "model", hidden_size=args.hidden, num_layers=args.layers,
                             num_heads=args.hidden // 64)
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "pt") as fh:
        params = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    rows = pairs(args.pairs)
    data = {"trl": preference_dataset(rows, extra=False), "cai": preference_dataset(rows)}

    # Warm-up (first-call costs: imports, allocator, kernels) is not counted.
    run_once("trl", model, data, argparse.Namespace(**{**vars(args), "steps": 2}), tmp / "warm")
    wall: dict[str, list[float]] = {"trl": [], "cai": []}
    cpu: dict[str, list[float]] = {"trl": [], "cai": []}
    n = args.steps * args.batch_size
    for r in range(args.repeats):
        order = ("trl", "cai") if r % 2 == 0 else ("cai", "trl")
        for kind in order:
            seconds, cpu_seconds = run_once(kind, model, data, args, tmp / f"{kind}-{r}")
            wall[kind].append(seconds)
            cpu[kind].append(cpu_seconds)
            print(f"repeat {r + 1} {kind:>3}: {n / seconds:8.1f} pairs/s wall ({seconds:.2f} s), "
                  f"{n / cpu_seconds:8.1f} pairs/CPU-s", flush=True)

    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    print(f"\nmodel: {params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} layers, fp32), {device}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps x {args.batch_size} pairs, {args.repeats} repeats")
    # Best-of wall time is the figure least disturbed by other work on the machine (as timeit does);
    # CPU time (this process, all threads) is the check against a loaded machine.
    rows = {
        "best wall pairs/s": {k: n / min(v) for k, v in wall.items()},
        "median wall pairs/s": {k: n / statistics.median(v) for k, v in wall.items()},
        "median pairs/CPU-s": {k: n / statistics.median(v) for k, v in cpu.items()},
    }
    print(f"{'':<22}{'trl RewardTrainer':>19}{'cai soft-label':>16}{'cai/trl':>10}")
    for name, v in rows.items():
        print(f"{name:<22}{v['trl']:>19.1f}{v['cai']:>16.1f}{v['cai'] / v['trl']:>10.3f}")
    ratio = rows["best wall pairs/s"]["cai"] / rows["best wall pairs/s"]["trl"]
    print(f"ratio cai/trl (best wall): {ratio:.3f} (target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")

if __name__ == "__main__":
    main()
