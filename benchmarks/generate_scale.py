"""Memory and CPU of `cai generate` as the prompt count grows: no model, only the pipeline.

Runs SL-CAI (two rounds, the shipped ``harmless`` constitution, exports on) on the ``scripted``
backend, which answers every request by echoing it back (so no model time at all), at two
prompt counts a factor of ten apart, each in a fresh process, and prints side by side:

  peak RSS (MB)           the process's high-water mark (``ru_maxrss``), imports included
  CPU ms / record         process CPU of ``run_generate`` (render, parse, write, export) / prompts

and the ratios larger / smaller. Flat memory means the larger run's peak RSS stays within
1.2x of the smaller one's; the pipeline's own cost is meant to stay at or under 1 ms per record.

    python benchmarks/generate_scale.py                         # 10,000 and 100,000 prompts
    python benchmarks/generate_scale.py --small 1000 --chunk-size 64
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(n: int, chunk_size: int, rounds: int, tmp: Path) -> dict:
    """In this process: write ``n`` prompts, run generate, return peak RSS and CPU."""
    from rich.console import Console

    from cai.sl import GenerateConfig, run_generate

    prompts = tmp / f"prompts{n}.jsonl"
    with open(prompts, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"How do I fix problem number {i} with my bicycle chain?"}) + "\n")
    cfg = GenerateConfig(constitution=str(REPO / "constitution" / "harmless.yaml"),
                         principles_dir=str(REPO / "principles"), prompts=str(prompts), out=str(tmp / f"run{n}"),
                         policy={"backend": "scripted", "model": "scripted"}, rounds=rounds, chunk_size=chunk_size)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = run_generate(cfg, console=Console(file=io.StringIO()))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"prompts": n, "records": summary["records"], "ok": summary["ok"],
            "exported": summary.get("exports", {}), "cpu_s": cpu, "wall_s": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000, help="Prompts in the smaller run (the larger has 10x).")
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=256, help="generate's chunk_size (its default: 256).")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:  # one measured run, in its own process so its peak is its own
        print(json.dumps(one_run(args.child, args.chunk_size, args.rounds, Path(args.tmp))))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="cai-genscale-") as tmp:
        for n in (args.small, args.small * args.factor):
            done = subprocess.run([sys.executable, __file__, "--child", str(n), "--tmp", tmp,
                                   "--chunk-size", str(args.chunk_size), "--rounds", str(args.rounds)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"generate at {n} prompts failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    small, large = results
    for r in results:
        if r["records"] != r["prompts"]:
            sys.exit(f"generate wrote {r['records']} records for {r['prompts']} prompts")
    print(f"cai generate, scripted backend (echo), {args.rounds} rounds, chunk_size {args.chunk_size}, exports on")
    print(f"{'prompts':>10}{'peak RSS MB':>14}{'CPU ms/record':>16}{'wall s':>9}{'exported sft/pref':>20}")
    for r in results:
        ex = r["exported"]
        print(f"{r['prompts']:>10}{r['peak_rss_mb']:>14.1f}{1000 * r['cpu_s'] / r['prompts']:>16.3f}"
              f"{r['wall_s']:>9.1f}{ex.get('sft', 0):>10}/{ex.get('preferences', 0)}")
    rss_ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    per_small, per_large = (1000 * r["cpu_s"] / r["prompts"] for r in results)
    print(f"peak RSS {large['prompts']} / {small['prompts']} prompts: {rss_ratio:.2f}x (goal <= 1.2x)")
    print(f"CPU per record at {large['prompts']} prompts: {per_large:.3f} ms (goal <= 1 ms; "
          f"{per_large / per_small:.2f}x the smaller run's)")


if __name__ == "__main__":
    main()
