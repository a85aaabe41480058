"""SL-CAI pipeline benchmark: stage batching vs a per-sample loop, and pipeline overhead.

Builds a random-weight Llama locally (default ~25M parameters, so generation dominates), loads
one backend, then measures side by side in one run:

1. the stage-batched pipeline (`run_generate`: all drafts, all critiques, all revisions);
2. the same backend called with exactly the conversations the pipeline sent, batch by batch
   ("raw generation of the same token counts") -> pipeline overhead = pipeline / raw - 1;
3. a per-sample sequential loop (draft, critique, revise one prompt at a time, the way
   LangChain's ConstitutionalChain calls a model) over the same conversations -> speedup.

Greedy decoding (temperature 0) keeps the token counts identical across the three.

    python benchmarks/sl_pipeline.py                       # vLLM (CPU build here), 48 prompts
    python benchmarks/sl_pipeline.py --backend transformers --prompts 16
    python benchmarks/sl_pipeline.py --no-exemplars --max-tokens 128   # decode-heavy
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Recording:
    """Wraps a backend: remembers every generate call and the time spent inside the backend."""

    def __init__(self, backend):
        self.backend = backend
        self.calls: list[tuple[list, object]] = []
        self.seconds = 0.0

    def generate(self, conversations, sampling=None):
        t0 = time.perf_counter()
        out = self.backend.generate(conversations, sampling)
        self.seconds += time.perf_counter() - t0
        self.calls.append((list(conversations), sampling))
        return out

    def __getattr__(self, name):
        # Everything else the pipeline asks a backend for (describe() for provenance, config,
        # score_choices, close) is the wrapped backend's: a wrapper that listed methods one by one
        # broke when provenance started calling describe().
        return getattr(self.backend, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="vllm", choices=["vllm", "transformers"])
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--seq-prompts", type=int, default=None,
                    help="Prompts for the sequential loop (default: all); per-prompt time is compared.")
    ap.add_argument("--no-exemplars", action="store_true",
                    help="Drop the constitution's few-shot exemplars: short prompts, so decoding dominates.")
    args = ap.parse_args()

    from cai.backends import BackendConfig, SamplingConfig, load_backend
    from cai.sl import GenerateConfig, run_generate
    from cai.testing import build_tiny_llama

    tmp = Path(tempfile.mkdtemp(prefix="cai-bench-"))
    model = build_tiny_llama(tmp / "model", hidden_size=args.hidden, num_layers=args.layers,
                             num_heads=args.hidden // 64, vocab_size=2048, max_position_embeddings=4096,
                             initializer_range=0.05)
    params = _count_params(model)
    options = {"gpu_memory_utilization": 0.2} if args.backend == "vllm" else {"batch_size": 64}
    cfg = BackendConfig(backend=args.backend, model=str(model), dtype="float32", max_model_len=4096,
                        on_overflow="truncate", options=options)
    t0 = time.perf_counter()
    backend = load_backend(cfg)
    load_s = time.perf_counter() - t0
    prompts = tmp / "prompts.jsonl"
    with open(prompts, "w") as fh:
        for i in range(args.prompts):
            fh.write(json.dumps({"prompt": f"Question {i}: how can I help my neighbour with their garden?"}) + "\n")
    constitution = REPO / "constitution" / "harmless.yaml"
    if args.no_exemplars:
        import yaml

        spec = yaml.safe_load(constitution.read_text())
        spec.pop("exemplars", None)
        constitution = tmp / "constitution" / "harmless.yaml"  # same name, no exemplars
        constitution.parent.mkdir()
        constitution.write_text(yaml.safe_dump(spec))
    gen = GenerateConfig(
        constitution=str(constitution), principles_dir=str(REPO / "principles"), prompts=str(prompts), out=str(tmp / "run"),
        policy={"backend": args.backend, "model": str(model)}, rounds=1, chunk_size=args.prompts,
        sampling=SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0), export=False,
    )
    # Warm-up outside the timings (first-call compilation, caches).
    backend.generate([[{"role": "user", "content": "warm up"}]] * 4, gen.sampling)

    rec = Recording(backend)
    _reset_cache(backend)
    t0 = time.perf_counter()
    summary = run_generate(gen, backends=(rec, rec))
    pipeline_s = time.perf_counter() - t0
    tokens = sum(s["completion_tokens"] for s in summary["stages"].values())
    chunk_sizes = [len(c) for c, _ in rec.calls if c and c[0][-1]["content"].startswith("Question ")]  # drafts

    _reset_cache(backend)  # otherwise the replay reuses the pipeline's cached prefixes
    t0 = time.perf_counter()
    for conversations, sampling in rec.calls:
        backend.generate(conversations, sampling)
    raw_s = time.perf_counter() - t0
    _reset_cache(backend)

    # The pipeline sends timed chunks (8, then up to 4x more...), so a stage call holds only some
    # prompts: regroup every conversation it sent by the prompt it belongs to.
    per_prompt: dict[str, list] = {}
    for conversations, sampling in rec.calls:
        for conv in conversations:
            per_prompt.setdefault(_prompt_of(conv), []).append((conv, sampling))
    n_seq = min(args.seq_prompts or args.prompts, len(per_prompt))
    t0 = time.perf_counter()
    for steps in list(per_prompt.values())[:n_seq]:  # one prompt at a time: draft, critique, revision
        for conv, sampling in steps:
            backend.generate([conv], sampling)
    seq_s = (time.perf_counter() - t0) * len(per_prompt) / n_seq
    backend.close()

    print(f"\nbackend={args.backend} model={params / 1e6:.1f}M params  prompts={args.prompts}  "
          f"max_tokens={args.max_tokens}  stage calls={len(rec.calls)} (chunks of {chunk_sizes})  generated tokens={tokens}  load={load_s:.1f}s")
    print(f"{'measure':<44}{'seconds':>10}{'tok/s':>10}")
    rows = [("stage-batched pipeline (run_generate)", pipeline_s),
            ("raw backend.generate, same batches", raw_s),
            (f"sequential per-sample loop ({n_seq} prompts, scaled)", seq_s)]
    for name, s in rows:
        print(f"{name:<44}{s:>10.2f}{tokens / s:>10.0f}")
    print(f"time inside the backend during the pipeline: {rec.seconds:.2f}s; the pipeline's own work: "
          f"{pipeline_s - rec.seconds:.2f}s ({(pipeline_s - rec.seconds) / pipeline_s:.1%} of its time)")
    print(f"pipeline overhead vs raw generation: {pipeline_s / raw_s - 1:+.1%} (target <= +20%)")
    print(f"speedup of the stage-batched pipeline over the sequential loop: {seq_s / pipeline_s:.1f}x (target >= 10x)")


def _prompt_of(conversation: list[dict]) -> str:
    """The benchmark prompt a stage conversation answers (its "Question N: ..." user turn)."""
    for m in conversation:
        if m["role"] == "user" and m["content"].startswith("Question "):
            return m["content"]
    raise ValueError("a stage conversation without its benchmark prompt")


def _reset_cache(backend) -> None:
    llm = getattr(backend, "llm", None)
    if llm is not None and hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()


def _count_params(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in path.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                total += _prod(st.get_slice(k).get_shape())
    return total


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    main()
