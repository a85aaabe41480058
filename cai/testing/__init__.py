"""Helpers for tests and benchmarks: tiny models built locally, no hub access needed.

Imports: :mod:`cai.core` only. Library code never imports it; tests and benchmarks do.
"""

from cai.testing.tiny import TINY_CHAT_TEMPLATE, build_tiny_llama

__all__ = ["TINY_CHAT_TEMPLATE", "build_tiny_llama"]
