"""Memory and CPU of `cai generate` as the prompt count grows: no model, only the pipeline.

Runs SL-CAI (two rounds, the shipped ``harmless`` constitution, exports on) on the ``scripted``
backend, which answers every request by echoing it back (so no model time at all), at two
prompt counts a factor of ten apart, each in a fresh process, and prints side by side:

  peak RSS (MB)           the process's high-water mark (``ru_maxrss``), imports included
  CPU ms / record         process CPU of ``run_generate`` (render, parse, write, export) / prompts

and the ratios larger / smaller. Flat memory means the larger run's peak RSS stays within
1.2x of the smaller one's; the pipeline's own cost is meant to stay at or under 1 ms per record.

``--also sample,label,mix`` measures those commands the same way, at the same two sizes, each
in a fresh process, with no model either:

  sample   ``run_sample``: K=2 scripted replies per prompt (two distinct answers: one pair each),
           samples.jsonl and pairs.jsonl written; per item = per prompt
  label    ``run_label``: that many TRL-format pairs judged by the scripted backend (fixed label
           probabilities) under the shipped ``harmless`` constitution, no few-shot; labels.jsonl
           and the dataset folder written; per item = per pair
  mix      ``run_mix``: that many AI pairs plus a tenth as many human ones (a third of them
           disagreeing), one source capped, split and written; per item = per pair read

    python benchmarks/generate_scale.py                         # 10,000 and 100,000 prompts
    python benchmarks/generate_scale.py --small 1000 --chunk-size 64
    python benchmarks/generate_scale.py --small 5000 --also sample,label,mix
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


COMMANDS = ("generate", "sample", "label", "mix")
ITEMS = {"generate": "prompts", "sample": "prompts", "label": "pairs", "mix": "pairs"}


def _write_prompts(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"How do I fix problem number {i} with my bicycle chain?"}) + "\n")
    return path


def _pair(i: int, swap: bool = False) -> dict:
    good = f"Check the chain's tension first, then clean and oil link {i}; replace it if it skips."
    bad = f"Just ride harder and the chain will sort itself out, number {i}."
    if swap:
        good, bad = bad, good
    return {"prompt": f"How do I fix problem number {i} with my bicycle chain?", "chosen": good, "rejected": bad}


def _write_pairs(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def _measured(command: str, n: int, fn) -> dict:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"command": command, "items": n, "summary": summary, "cpu_s": cpu, "wall_s": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def one_run(n: int, chunk_size: int, rounds: int, tmp: Path, command: str = "generate") -> dict:
    """In this process: write ``n`` inputs, run ``command``, return peak RSS, CPU and what it wrote."""
    from rich.console import Console

    console = Console(file=io.StringIO())
    scripted = {"backend": "scripted", "model": "scripted"}
    if command == "generate":
        from cai.sl import GenerateConfig, run_generate

        prompts = _write_prompts(tmp / f"prompts{n}.jsonl", n)
        cfg = GenerateConfig(constitution=str(REPO / "constitution" / "harmless.yaml"),
                             principles_dir=str(REPO / "principles"), prompts=str(prompts), out=str(tmp / f"run{n}"),
                             policy=scripted, rounds=rounds, chunk_size=chunk_size)
        r = _measured(command, n, lambda: run_generate(cfg, console=console))
        s = r.pop("summary")
        ex = s.get("exports", {})
        if s["records"] != n:
            sys.exit(f"generate wrote {s['records']} records for {n} prompts")
        r["wrote"] = f"{ex.get('sft', 0)}/{ex.get('preferences', 0)} sft/pref"
    elif command == "sample":
        from cai.feedback import SampleConfig, run_sample

        prompts = _write_prompts(tmp / f"sprompts{n}.jsonl", n)
        cfg = SampleConfig(prompts=str(prompts), out=str(tmp / f"sample{n}"), n=2, chunk_size=chunk_size,
                           policy={**scripted, "options": {"replies": ["Tighten the chain.", "Replace the chain."]}})
        r = _measured(command, n, lambda: run_sample(cfg, console=console))
        s = r.pop("summary")
        if s["pairs"] != n:
            sys.exit(f"sample formed {s['pairs']} pairs for {n} prompts")
        r["wrote"] = f"{s['pairs']} pairs"
    elif command == "label":
        from cai.feedback import LabelConfig, run_label

        pairs = _write_pairs(tmp / f"lpairs{n}.jsonl", (_pair(i) for i in range(n)))
        cfg = LabelConfig(pairs=str(pairs), constitution=str(REPO / "constitution" / "harmless.yaml"),
                          principles_dir=str(REPO / "principles"), out=str(tmp / f"label{n}"), few_shot=0,
                          chunk_size=chunk_size, labeler={**scripted, "options": {"choices": [{"A": 0.8, "B": 0.2}]}})
        r = _measured(command, n, lambda: run_label(cfg, console=console))
        s = r.pop("summary")
        if s["written"] != n:
            sys.exit(f"label wrote {s['written']} labels for {n} pairs")
        r["wrote"] = f"{s['written']} labels"
    elif command == "mix":
        from cai.data import MixConfig, run_mix

        ai = _write_pairs(tmp / f"ai{n}.jsonl", ({**_pair(i), "p_chosen": 0.9} for i in range(n)))
        human = _write_pairs(tmp / f"human{n}.jsonl", (_pair(i, swap=i % 3 == 0) for i in range(0, n, 10)))
        cfg = MixConfig(inputs=[f"ai-feedback={ai}", f"human={human}"], out=str(tmp / f"mix{n}"),
                        caps={"ai-feedback": n - n // 20}, seed=0)
        r = _measured(command, n, lambda: run_mix(cfg))
        s = r.pop("summary")
        if s["splits"]["train"] + s["splits"]["test"] == 0:
            sys.exit("mix wrote no pairs")
        r["wrote"] = f"{s['splits']['train']}/{s['splits']['test']} train/test"
    else:
        raise ValueError(command)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000, help="Prompts in the smaller run (the larger has 10x).")
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=256, help="generate's chunk_size (its default: 256); "
                    "sample's and label's too.")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--also", default="", help="Also measure these commands, comma-separated: sample,label,mix.")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--command", default="generate", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:  # one measured run, in its own process so its peak is its own
        print(json.dumps(one_run(args.child, args.chunk_size, args.rounds, Path(args.tmp), args.command)))
        return
    also = [c.strip() for c in args.also.split(",") if c.strip()]
    unknown = [c for c in also if c not in COMMANDS[1:]]
    if unknown:
        ap.error(f"--also: unknown command(s) {', '.join(unknown)} (choose from {', '.join(COMMANDS[1:])})")
    commands = ["generate", *dict.fromkeys(also)]
    sizes = (args.small, args.small * args.factor)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="cai-genscale-") as tmp:
        for command in commands:
            for n in sizes:
                done = subprocess.run([sys.executable, __file__, "--child", str(n), "--tmp", tmp, "--command", command,
                                       "--chunk-size", str(args.chunk_size), "--rounds", str(args.rounds)],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{command} at {n} items failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
                results.setdefault(command, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"scripted backend (no model), chunk_size {args.chunk_size}; generate: {args.rounds} rounds, exports on")
    print(f"{'command':<10}{'items':>10}{'peak RSS MB':>14}{'CPU ms/item':>14}{'wall s':>9}   wrote")
    for command in commands:
        for r in results[command]:
            print(f"{command:<10}{r['items']:>10}{r['peak_rss_mb']:>14.1f}{1000 * r['cpu_s'] / r['items']:>14.3f}"
                  f"{r['wall_s']:>9.1f}   {r['wrote']}")
    small, large = results["generate"]
    rss_ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    per_small, per_large = (1000 * r["cpu_s"] / r["items"] for r in results["generate"])
    print(f"peak RSS {large['items']} / {small['items']} prompts: {rss_ratio:.2f}x (goal <= 1.2x)")
    print(f"CPU per record at {large['items']} prompts: {per_large:.3f} ms (goal <= 1 ms; "
          f"{per_large / per_small:.2f}x the smaller run's)")
    for command in commands[1:]:
        small, large = results[command]
        per_small, per_large = (1000 * r["cpu_s"] / r["items"] for r in (small, large))
        print(f"{command}: peak RSS {large['items']} / {small['items']} {ITEMS[command]}: "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x (goal <= 1.2x); CPU per item "
              f"{per_large:.3f} ms ({per_large / per_small:.2f}x the smaller run's)")


if __name__ == "__main__":
    main()
