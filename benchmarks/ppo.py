"""PPO step time: cai's PPO against TRL 1.12's experimental PPOTrainer, same models, same batch.

TRL removed its PPOTrainer in 1.13, and this project pins TRL 1.16, so TRL 1.12 lives in its own
virtual environment and runs in a subprocess of that venv's python; cai runs in this process.
Both load the same saved tiny models (a Llama policy and a trained Llama reward model sharing
one tokenizer, as TRL requires) and use the same rollout batch, minibatch, response length,
PPO epochs and thread count. The first ``--warmup`` steps are not timed.

    python3 -m venv /tmp/trl112
    /tmp/trl112/bin/pip install -c .ci/constraints.txt "trl==1.12.*" accelerate "transformers>=5.16.1,<5.20"
    python benchmarks/ppo.py --trl-python /tmp/trl112/bin/python

or, lighter, TRL 1.12 alone in a folder put in front of this environment's packages (the rest,
torch and transformers included, is this environment's; what CI's smoke test does)::

    pip install --target /tmp/trl112-pkg --no-deps "trl==1.12.*"
    python benchmarks/ppo.py --trl-path /tmp/trl112-pkg
    python benchmarks/ppo.py --trl-python /tmp/trl112/bin/python --hidden 256 --layers 4 --max-new-tokens 32

Differences that remain by design (they are part of what is compared): TRL trains a separate
value model (here a copy of the reward model, as its examples do), scores the reward model on
token ids, and reuses the generation logits for the rollout log-probabilities; cai uses a value
head on the policy, re-tokenizes text for the reward model, and runs one more forward pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


# ---------------------------------------------------------------- TRL side (runs in the TRL 1.12 venv)
def trl_worker(spec: dict) -> None:
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                              TrainerCallback)
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    import trl

    torch.set_num_threads(spec["threads"])
    tok = AutoTokenizer.from_pretrained(spec["model"], padding_side="left")
    prompts = [json.loads(line)["prompt"] for line in Path(spec["prompts"]).read_text().splitlines()]
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]  # the same prompt ids cai feeds the policy
    dataset = Dataset.from_dict({"input_ids": ids})

    policy = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(spec["reward_model"], num_labels=1, dtype=torch.float32)
    value = AutoModelForSequenceClassification.from_pretrained(spec["reward_model"], num_labels=1, dtype=torch.float32)
    args = PPOConfig(
        output_dir=spec["out"], seed=spec["seed"], use_cpu=True, bf16=False, report_to=[], save_strategy="no",
        logging_steps=1, per_device_train_batch_size=spec["batch_size"], gradient_accumulation_steps=1,
        num_mini_batches=spec["batch_size"] // spec["mini_batch_size"], local_rollout_forward_batch_size=spec["batch_size"],
        num_ppo_epochs=spec["ppo_epochs"], total_episodes=spec["steps"] * spec["batch_size"],
        response_length=spec["max_new_tokens"], stop_token="eos", temperature=1.0, kl_coef=spec["beta"],
        learning_rate=spec["learning_rate"], num_sample_generations=0, disable_tqdm=True,
    )
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            times.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())

    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                         train_dataset=dataset, value_model=value, callbacks=[Clock()])
    if spec.get("no_gc"):  # TRL calls gc.collect() every step; on small models it dominates the step time
        import gc

        gc.collect = lambda *a, **k: 0
    trainer.train()
    steps = [b - a for a, b in zip(times, times[1:])]
    print("TRL_RESULT " + json.dumps({"step_s": steps, "version": trl.__version__, "torch": torch.__version__}))


# ---------------------------------------------------------------- cai side (this process)
def build_models(root: Path, args) -> dict:
    from cai.testing.ppo import build_tiny_policy, build_tiny_reward_model, write_prompts

    policy = build_tiny_policy(root / "policy", hidden_size=args.hidden, num_layers=args.layers)
    size = {"hidden_size": args.hidden, "num_layers": args.layers} if args.rm_like_policy else {}
    rm = build_tiny_reward_model(root / "rm", policy, steps=args.rm_steps, **size)
    prompts = write_prompts(root / "prompts.jsonl", 64)
    return {"model": str(policy), "reward_model": str(rm), "prompts": str(prompts)}


def run_cai(paths: dict, out: Path, args) -> list[float]:
    import torch

    from cai.train.ppo import PPOConfig, train_ppo

    torch.set_num_threads(args.threads)
    cfg = PPOConfig(**paths, out=str(out), max_steps=args.steps, batch_size=args.batch_size,
                    mini_batch_size=args.mini_batch_size, ppo_epochs=args.ppo_epochs, max_new_tokens=args.max_new_tokens,
                    learning_rate=args.learning_rate, seed=args.seed, save_every=10_000, quiet=True,
                    kl={"controller": "fixed", "beta": args.beta})
    train_ppo(cfg)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["time/step_s"] for r in rows]


def run_trl(paths: dict, out: Path, args, no_gc: bool = False) -> dict:
    spec = {**paths, "no_gc": no_gc, "out": str(out), "steps": args.steps, "batch_size": args.batch_size,
            "mini_batch_size": args.mini_batch_size, "ppo_epochs": args.ppo_epochs, "max_new_tokens": args.max_new_tokens,
            "learning_rate": args.learning_rate, "seed": args.seed, "beta": args.beta, "threads": args.threads}
    env = {"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin"}
    python = args.trl_python
    if args.trl_path:  # TRL 1.12 from a folder, ahead of this interpreter's own TRL
        python, env["PYTHONPATH"] = sys.executable, str(Path(args.trl_path).resolve())
    done = subprocess.run([python, __file__, "--trl-worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("TRL_RESULT "):
            return json.loads(line.removeprefix("TRL_RESULT "))
    raise RuntimeError(f"TRL run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trl-python", default="/tmp/trl112/bin/python", help="python of a venv with trl==1.12.*")
    p.add_argument("--trl-path", help="a folder holding trl==1.12.* (pip install --target DIR --no-deps), "
                                       "run with this python instead of --trl-python")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--mini-batch-size", type=int, default=8)
    p.add_argument("--ppo-epochs", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rm-steps", type=int, default=60)
    p.add_argument("--rm-like-policy", action="store_true",
                   help="reward (and so TRL's value) model as large as the policy, as in real RLHF (default: width 64)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trl-without-gc", action="store_true",
                   help="also time TRL with its per-step gc.collect() turned off (compute alone)")
    p.add_argument("--trl-worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.trl_worker:
        trl_worker(json.loads(args.trl_worker))
        return

    with tempfile.TemporaryDirectory(prefix="cai-ppo-bench-") as tmp:
        root = Path(tmp)
        paths = build_models(root, args)
        cai_steps = run_cai(paths, root / "cai", args)[args.warmup:]
        trl = run_trl(paths, root / "trl", args)
        trl_nogc = run_trl(paths, root / "trl-nogc", args, no_gc=True) if args.trl_without_gc else None
    trl_steps = trl["step_s"][args.warmup:]
    cai_med, trl_med = statistics.median(cai_steps), statistics.median(trl_steps)
    rm_size = f"{args.hidden}x{args.layers}" if args.rm_like_policy else "64x2"
    print(f"PPO step time, policy hidden={args.hidden} layers={args.layers} (reward model {rm_size}), batch {args.batch_size}, "
          f"minibatch {args.mini_batch_size}, {args.ppo_epochs} epochs, ≤{args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s), {len(cai_steps)} timed steps after {args.warmup} warm-up")
    print(f"  cai            median {cai_med:.3f} s/step  (mean {statistics.mean(cai_steps):.3f})")
    print(f"  TRL {trl['version']:<10} median {trl_med:.3f} s/step  (mean {statistics.mean(trl_steps):.3f})")
    print(f"  ratio TRL / cai: {trl_med / cai_med:.2f}×")
    if trl_nogc:
        nogc = statistics.median(trl_nogc["step_s"][args.warmup:])
        print(f"  TRL without its per-step gc.collect(): median {nogc:.3f} s/step, ratio {nogc / cai_med:.2f}×")


if __name__ == "__main__":
    main()
