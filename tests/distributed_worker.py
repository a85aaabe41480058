"""One process of the two-process training checks (run by tests/test_distributed_train.py):

    torchrun --nproc_per_node 2 tests/distributed_worker.py CASE OUT [MODEL]

Each case runs the project's code under accelerate on gloo (CPU) with this process's share of a
fixed batch and writes what it got to ``OUT/CASE-RANK.json``; the test compares that with one
process holding the whole batch. The data come from :mod:`distributed_cases`, shared with the test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402

import distributed_cases as cases  # noqa: E402


def main(case: str, out: str, model: str | None = None) -> None:
    acc = Accelerator(cpu=True)
    rank, world = acc.process_index, acc.num_processes
    if case == "whiten":
        result = cases.whiten_share(rank, world, lambda t: acc.reduce(t, "sum"))
    elif case == "ppo_update":
        result = cases.ppo_update(acc, rank, world)
    elif case == "online_rewards":
        result = cases.online_rewards(rank, world)
    elif case == "reward_eval":
        result = cases.reward_eval(acc, model)
    elif case == "reward_step":  # the whole step in one batch (1 process) or 2 x 2 x 2
        result = cases.reward_step(model, str(Path(out) / "rm-out"), world, 8 // (2 * world) if world > 1 else 8,
                                   2 if world > 1 else 1)
    elif case == "reward_step_accum":  # 1 process, 4 micro-batches of 2
        result = cases.reward_step(model, str(Path(out) / "rm-out"), world, 2, 4)
    else:
        raise SystemExit(f"unknown case {case}")
    Path(out, f"{case}-{rank}.json").write_text(json.dumps(result))
    acc.wait_for_everyone()
    torch.distributed.destroy_process_group()
    # Skip interpreter finalization: gloo's C++ worker threads can still hold tensors then, and
    # freeing them without a live interpreter aborts the process ("terminate called without an
    # active exception", SIGABRT; pytorch/pytorch#179291). Seen once in CI after the results were
    # written; the results are on disk and compared by the test, so a plain exit is safe here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
