"""What ``benchmarks/gpu_check.sh`` runs: the online RL path on CUDA, with a 1B-shaped random Llama.

1. The transformers backend on the device: batched generation (tokens/s) and ``score_choices``
   judging (prompts/s), with checks that the option probabilities are finite and sum to 1.
2. ``cai train grpo`` (TRL's GRPOTrainer) with the constitution as judge (pointwise, the same model
   on the transformers backend, on the same GPU): seconds per step and the judge's share.
3. ``cai train rloo`` (TRL's RLOOTrainer) with the guards as rewards (no judge): seconds per step.

The model is built from a config with random weights (TinyLlama-1.1B's shape: width 2048, 22 layers,
32 heads, 4 KV heads, MLP 5632, with cai's small test tokenizer), so this measures throughput,
not quality. Everything goes to ``OUT/gpu_check.json``. Without CUDA (or with ``--tiny``) every
size shrinks and it runs on the CPU: the fallback CI smoke-tests.

    bash benchmarks/gpu_check.sh            # on a CUDA machine, see the script for the wheels
    python benchmarks/gpu_check.py --tiny --out /tmp/check
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = dict(hidden_size=2048, num_layers=22, num_heads=32, num_kv_heads=4, intermediate_size=5632,
            max_position_embeddings=2048, initializer_range=0.02)
TINY = dict(hidden_size=64, num_layers=1, num_heads=1, initializer_range=0.02)


def stamp(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def backend_check(model: Path, device: str, sizes: dict) -> dict:
    from cai.backends import BackendConfig, SamplingConfig, load_backend

    dtype = "bfloat16" if device == "cuda" else "float32"
    backend = load_backend(BackendConfig(backend="transformers", model=str(model), dtype=dtype,
                                         on_overflow="truncate", max_model_len=1024,
                                         options={"device": device, "batch_size": sizes["batch"]}))
    try:
        prompts = [[{"role": "user", "content": f"write a short answer about the rules number {i}"}]
                   for i in range(sizes["prompts"])]
        sampling = SamplingConfig(temperature=1.0, max_tokens=sizes["tokens"], seed=0)
        backend.generate(prompts[:2], sampling)  # warm-up (kernels, allocator)
        t0 = time.perf_counter()
        out = backend.generate(prompts, sampling)
        gen_s = time.perf_counter() - t0
        tokens = sum(c.completion_tokens for row in out for c in row)
        judge = [p + [{"role": "assistant", "content": "The answer is: ("}] for p in prompts]
        t0 = time.perf_counter()
        probs = backend.score_choices(judge, ["A", "B"])
        score_s = time.perf_counter() - t0
        ok = all(math.isfinite(v) for p in probs for v in p.values()) and all(abs(sum(p.values()) - 1) < 1e-3
                                                                               for p in probs)
        return {"device": str(backend.describe().get("device")), "generate_tokens": tokens,
                "generate_tokens_per_s": tokens / gen_s, "score_prompts_per_s": len(judge) / score_s,
                "probabilities_ok": ok}
    finally:
        backend.close()


def trainer_check(algorithm: str, policy: Path, prompts: Path, out: Path, device: str, sizes: dict) -> dict:
    from cai.train.online import OnlineConfig, train_online

    judge = {"backend": "transformers", "model": str(policy), "on_overflow": "truncate", "max_model_len": 1024,
             "dtype": "bfloat16" if device == "cuda" else "float32", "options": {"device": device}}
    rewards = ["constitution", "eos=0.5"] if algorithm == "grpo" else ["length", "eos", "repetition"]
    cfg = OnlineConfig(algorithm=algorithm, model=str(policy), prompts=str(prompts), out=str(out / algorithm),
                       max_steps=sizes["steps"], num_generations=sizes["k"], batch_size=sizes["rl_batch"],
                       max_completion_length=sizes["tokens"], save_steps=10_000, quiet=False, rewards=rewards,
                       dtype="bfloat16" if device == "cuda" else None,
                       trl={"bf16": True} if device == "cuda" else {},
                       constitution={"constitution": str(ROOT / "constitution/default.yaml"), "few_shot": 0,
                                     "principles_per_completion": 1, "feedback": judge})
    summary = train_online(cfg)
    rows = [json.loads(line) for line in (out / algorithm / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:] or rows
    result = {"steps": len(rows), "step_s": sum(r["time/step_s"] for r in timed) / len(timed),
              "reward_start_end": [rows[0]["objective/reward_mean"], rows[-1]["objective/reward_mean"]],
              "kl_end": rows[-1]["objective/kl"], "finite": all(math.isfinite(r["objective/reward_mean"]) for r in rows)}
    if "judge" in summary:
        result["judge_share"] = summary["judge"]["seconds"] / max(sum(r["time/step_s"] for r in rows), 1e-9)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized model and counts (the fallback).")
    ap.add_argument("--out", required=True, help="Folder for gpu_check.json and the runs.")
    args = ap.parse_args()
    import torch

    from cai.testing import build_tiny_llama
    from cai.testing.ppo import write_prompts

    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    if not cuda and not args.tiny:
        stamp("no CUDA device: running the CPU fallback at tiny size")
    device = "cuda" if cuda and not args.tiny else "cpu"
    sizes = (dict(prompts=4, batch=4, tokens=8, steps=2, k=2, rl_batch=4) if tiny else
             dict(prompts=64, batch=32, tokens=64, steps=4, k=8, rl_batch=32))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "tiny": tiny,
                    "torch": torch.__version__, "sizes": sizes}
    stamp(f"device {report['device']}; building the {'tiny' if tiny else '1B-shaped'} model")
    model = build_tiny_llama(out / "model", **(TINY if tiny else FULL))
    import transformers

    config = transformers.AutoConfig.from_pretrained(model)
    with torch.device("meta"):  # count parameters without allocating them
        report["model_params"] = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_config(config).parameters())
    prompts = write_prompts(out / "prompts.jsonl", n=max(16, sizes["rl_batch"]))
    failures = []
    for name, check in (("backend", lambda: backend_check(model, device, sizes)),
                        ("grpo", lambda: trainer_check("grpo", model, prompts, out, device, sizes)),
                        ("rloo", lambda: trainer_check("rloo", model, prompts, out, device, sizes))):
        stamp(f"check {name}")
        t0 = time.perf_counter()
        try:
            report[name] = check()
        except Exception as exc:  # noqa: BLE001 - report every check, then fail at the end
            report[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            failures.append(name)
        report[name]["seconds"] = round(time.perf_counter() - t0, 2)
        stamp(f"{name}: {json.dumps(report[name])}")
    if device == "cuda":
        report["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    bad = [n for n in ("grpo", "rloo") if n not in failures and not report[n]["finite"]]
    if "backend" not in failures and not report["backend"]["probabilities_ok"]:
        bad.append("backend")
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if failures or bad:
        print(f"gpu check FAILED: {', '.join(failures + bad)}", file=sys.stderr)
        return 1
    print("gpu check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
