"""Every script under ``benchmarks/`` runs at tiny sizes and prints the figure the README quotes.

The figures themselves are measured at the scripts' default sizes (see their docstrings and the
README); here each runs in seconds on a tiny random model, so a script that breaks (as
``sl_pipeline.py`` once did when provenance began asking every backend for ``describe()``) fails
the suite instead of the next person who tries to reproduce a number. Nothing here asserts a time.

``ppo.py`` compares against TRL 1.12's PPOTrainer, which TRL 1.16 no longer has: it runs when
``CAI_TRL112_PATH`` names a folder holding ``trl==1.12.*`` (``.ci/run`` installs one with
``pip install --target``), and is skipped otherwise unless ``CAI_REQUIRE_TRL112=1``.
``embedded_model.py`` needs the embedded model (skipped without it unless ``CAI_REQUIRE_MODEL=1``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
TINY = ["--hidden", "64", "--layers", "1"]

# script -> (tiny arguments, regexes its output must match, marks)
CASES: dict[str, tuple[list[str], list[str], list]] = {
    # 10 prompts: the pipeline sends timed chunks, as at its default 48, so the replay must regroup them
    "sl_pipeline.py": (["--backend", "transformers", "--prompts", "10", "--seq-prompts", "2", "--max-tokens", "4", *TINY],
                       [r"stage calls=\d+ \(chunks of \[\d+(, \d+)+\]\)", r"pipeline overhead vs raw generation: [+-][\d.]+%",
                        r"speedup of the stage-batched pipeline over the sequential loop: [\d.]+x"], []),
    "generate_scale.py": (["--small", "40", "--chunk-size", "8"],  # 40 and 400 prompts, many chunks, exports
                          [r"peak RSS 400 / 40 prompts: [\d.]+x", r"CPU per record at 400 prompts: [\d.]+ ms"], []),
    "generation.py": (["--backends", "transformers", "--prompts", "2", "--seq-prompts", "1", "--max-tokens", "4", *TINY],
                      [r"transformers"], []),
    "judge.py": (["--items", "2", "--max-tokens", "4", "--repeats", "1", *TINY],
                 [r"a written verdict costs [\d.]+x a score_choices judgement"], []),
    "judge_prefix.py": (["--groups", "1", "--k", "3", "--prompt-words", "20", "--completion-words", "4", "--repeats", "1",
                         "--max-model-len", "512", *TINY],
                        [r"prefix reuse: groupwise [\d.]+x faster, pointwise [\d.]+x faster"],
                        [pytest.mark.slow, pytest.mark.vllm]),
    "labeling.py": (["--backends", "transformers", "--pairs", "2", "--max-tokens", "4", "--few-shot", "0", *TINY],
                    [r"a written verdict costs [\d.]+x a log-prob label"], []),
    "loop_overhead.py": (["--prompts", "2", "--repeats", "1"], [r"cai run adds [\d.]+ s in all", r"[\d.]+x direct"],
                         [pytest.mark.slow]),
    "reward_training.py": (["--pairs", "8", "--steps", "2", "--batch-size", "2", "--repeats", "1", "--device", "cpu",
                            *TINY], [r"ratio cai/trl \(best wall\): [\d.]+"], []),
    "seeded_sampling.py": (["--prompts", "2", "--max-tokens", "4", "--repeats", "1"],
                           [r"seeded / global RNG throughput: [\d.]+x wall"], []),
    "ray_workers.py": (["--prompts", "2", "--max-tokens", "4", "--workers", "1,2", *TINY], [r"vs 1st"],
                       [pytest.mark.slow]),
    "ppo.py": (["--steps", "3", "--warmup", "1", "--batch-size", "4", "--mini-batch-size", "2", "--ppo-epochs", "1",
                "--max-new-tokens", "4", "--rm-steps", "2"], [r"ratio TRL / cai: [\d.]+×"], [pytest.mark.slow, pytest.mark.train]),
    "embedded_model.py": (["--configs", "transformers", "--prompts", "1", "--max-tokens", "2"],
                          [r"transformers\s+[\d.]+\s+[\d.]+"], [pytest.mark.slow]),
}


def test_every_benchmark_has_a_smoke_case():
    """Each script is a case here, or its name appears in another test file (its own smoke test)."""
    here = Path(__file__).name
    elsewhere = " ".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py") if p.name != here)
    scripts = {p.name for p in BENCH.glob("*.py")} | {p.name for p in BENCH.glob("*.sh")}
    missing = sorted(s for s in scripts if s not in CASES and f"benchmarks/{s}" not in elsewhere
                     and f'"{s}"' not in elsewhere)
    assert missing == [], f"benchmarks without a smoke test: {missing} (add one to CASES, or to its own test file)"


def _extra_args(script: str) -> list[str]:
    if script == "ppo.py":
        path = os.environ.get("CAI_TRL112_PATH")
        if not path or not Path(path, "trl").is_dir():
            if os.environ.get("CAI_REQUIRE_TRL112"):
                pytest.fail("CAI_REQUIRE_TRL112 is set but CAI_TRL112_PATH holds no trl package")
            pytest.skip("TRL 1.12 is not installed: pip install --target DIR --no-deps 'trl==1.12.*' and set CAI_TRL112_PATH")
        return ["--trl-path", path]
    if script == "judge_prefix.py":
        pytest.importorskip("vllm", reason="judge_prefix.py measures vLLM's prefix cache (the vllm extra)")
    if script == "embedded_model.py":
        from cai.models import DEFAULT_MODEL, known_model

        if known_model(DEFAULT_MODEL).locate() is None and not os.environ.get("CAI_REQUIRE_MODEL"):
            pytest.skip(f"the embedded model is not installed ({known_model(DEFAULT_MODEL).install})")
    return []


@pytest.mark.parametrize("script", [pytest.param(s, marks=c[2]) for s, c in CASES.items() if (BENCH / s).exists()])
def test_benchmark_runs_at_tiny_size(script, tmp_path):
    args, expect, _ = CASES[script]
    # TMPDIR stays the system's: Ray's socket paths under a pytest tmp_path pass the 107-byte AF_UNIX limit
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(BENCH / script), *args, *_extra_args(script)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{out[-3000:]}"
    assert not re.search(r"^\S+: failed \(exit", out, re.M), out[-3000:]
    for pattern in expect:
        assert re.search(pattern, out), f"{script}: no line matching {pattern!r} in:\n{out[-3000:]}"
