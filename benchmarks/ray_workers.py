"""Throughput of the batch stages' backend call on 1 vs N Ray workers, side by side in one run.

Each worker is a Ray actor holding its own copy of the backend (``--workers`` / ``workers:``), and a
batch call is split across them (cai/backends/ray_backend.py). This script times the same greedy
``generate`` batch (what `cai sample` and `cai generate` hand the backend) and the same
``score_choices`` batch (what `cai label` hands it) for each worker count, checks that the outputs
are identical, and prints prompts/s, tokens/s and the ratios to the first worker count listed.

Without ``--model`` it builds a small random-weight Llama locally (fp32). Each worker reserves one
CPU (Ray then gives it one thread); on a GPU node each reserves ``--worker-gpus`` GPUs (default:
the vLLM tensor-parallel size, or 1).

    python benchmarks/ray_workers.py                                  # this machine, 1 vs 2 workers
    python benchmarks/ray_workers.py --backend vllm --model /models/llama-8b --workers 1,2,4,8 \\
        --ray-address auto --prompts 2048 --max-tokens 256 --device cuda   # a multi-GPU node/cluster
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TOPICS = ["my neighbour's garden", "a rude email", "a birthday poem", "tax forms", "a lost cat",
          "learning to code", "a job interview", "cooking rice", "a noisy flat", "saving money"]


def prompts(n: int, offset: int = 0) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Question {i}: how should I deal with {TOPICS[i % len(TOPICS)]}? "
                                         "Please explain why, step by step."}]
            for i in range(offset, offset + n)]


def backend_config(args, model: str, workers: int) -> dict:
    options = {"batch_size": args.batch_size, "device": args.device} if args.backend == "transformers" else {}
    if args.backend == "vllm":
        options = {"gpu_memory_utilization": args.gpu_memory_utilization,
                   "tensor_parallel_size": args.tensor_parallel_size}
    return dict(backend=args.backend, model=model, dtype=args.dtype, max_model_len=args.max_model_len,
                options=options, workers=workers, ray_address=args.ray_address, worker_gpus=args.worker_gpus)


def measure(args, model: str, workers: int) -> dict:
    from cai.backends import SamplingConfig, load_backend
    from cai.backends.ray_backend import RayBackend

    t0 = time.perf_counter()
    # One worker also goes through Ray (workers=1 with a ray_address, or forced below), so the two
    # runs differ only in the number of workers.
    config = backend_config(args, model, workers)
    if workers == 1 and not args.ray_address:
        from cai.backends import BackendConfig

        backend = RayBackend(BackendConfig.model_validate(config))
    else:
        backend = load_backend(**config)
    start_s = time.perf_counter() - t0
    sampling = SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    try:
        backend.generate(prompts(2 * workers, offset=10_000), sampling)  # warm-up, not timed
        batch = prompts(args.prompts)
        t0 = time.perf_counter()
        out = backend.generate(batch, sampling)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = backend.score_choices(batch, ["A", "B"])
        score_s = time.perf_counter() - t0
    finally:
        backend.close()
    return {"workers": workers, "start_s": start_s, "gen_s": gen_s, "score_s": score_s,
            "tokens": sum(c.completion_tokens for row in out for c in row),
            "texts": [row[0].text for row in out], "scores": [s["A"] for s in scores]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="transformers", help="transformers or vllm (any registered backend)")
    p.add_argument("--model", help="model folder or hub id (default: a tiny random Llama built here)")
    p.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2,4")
    p.add_argument("--ray-address", help="Ray cluster (auto, HOST:6379); default: a local instance")
    p.add_argument("--worker-gpus", type=float, help="GPUs per worker (default: TP size on GPU nodes, else 0)")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16, help="transformers: rows per forward pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-model-len", type=int, default=512)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256, help="tiny model: hidden size")
    p.add_argument("--layers", type=int, default=4, help="tiny model: layers")
    args = p.parse_args()

    import ray

    counts = [int(w) for w in args.workers.split(",")]
    model = args.model
    if model is None:
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp()) / "model", hidden_size=args.hidden,
                                     num_layers=args.layers, num_heads=max(1, args.hidden // 64)))
    if not args.ray_address:  # one local instance for every run, with a CPU per worker
        ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
    runs = [measure(args, model, w) for w in counts]
    base = runs[0]
    print(f"\n{args.backend} on Ray workers: {args.prompts} prompts x {args.max_tokens} tokens (greedy), "
          f"score_choices on the same {args.prompts}")
    print(f"{'workers':>7} {'start s':>8} {'gen s':>7} {'tok/s':>8} {'prompts/s':>9} {'vs 1st':>7} "
          f"{'score s':>8} {'vs 1st':>8} {'same out':>8}")
    for r in runs:
        same = r["texts"] == base["texts"] and all(abs(a - b) < 1e-4 for a, b in zip(r["scores"], base["scores"]))
        print(f"{r['workers']:>7} {r['start_s']:>8.1f} {r['gen_s']:>7.2f} {r['tokens'] / r['gen_s']:>8.1f} "
              f"{args.prompts / r['gen_s']:>9.2f} {base['gen_s'] / r['gen_s']:>7.2f} {r['score_s']:>8.2f} "
              f"{base['score_s'] / r['score_s']:>8.2f} {'yes' if same else 'NO':>8}")
    import os

    print(f"(load average over the run: {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores; a ratio below the "
          "worker count on a busy machine measures the contention, not the workers)")
    if ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":
    main()
