"""The data types every stage passes on, and the steps that only move data:

- :mod:`cai.data.records`: :class:`Record`, one per prompt through SL-CAI (draft, critiques,
  revisions, provenance), and the chat-message type.
- :mod:`cai.data.prompts`: reading prompts (JSONL, CSV, HF datasets, HH transcripts).
- :mod:`cai.data.store`: the append-only, crash-safe JSONL record store.
- :mod:`cai.data.pairs`: :class:`PreferencePair` (prompt, chosen, rejected, soft label ``p_chosen``)
  and its TRL-format export; :mod:`cai.data.pair_split` splits transcripts into prompt + responses.
- :mod:`cai.data.route` (``cai route``): AI labels to people; :mod:`cai.data.mix` (``cai mix``):
  sources into one training dataset.

Imports: :mod:`cai.core` only.
"""

from cai.data.mix import MixConfig, run_mix
from cai.data.route import RouteConfig, run_route

__all__ = ["MixConfig", "RouteConfig", "run_mix", "run_route"]
