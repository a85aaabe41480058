"""SL-CAI: draft → critique → revise, stage-batched, with resumable records and TRL exports.

Imports: core, models, principles, data, backends and judge.
"""

from cai.sl.config import GenerateConfig
from cai.sl.pipeline import run_generate

__all__ = ["GenerateConfig", "run_generate"]
