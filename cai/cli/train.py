"""`cai train ...`: reward model, PPO, GRPO/RLOO, SFT and DPO. Each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(rich_markup_mode=None, help="Train a reward model, PPO with a KL penalty, GRPO or RLOO (online, the constitution as judge), SFT or DPO.", no_args_is_help=True)
