"""RL-CAI feedback: sample K responses per prompt, label pairs with log-prob soft labels, measure
agreement with human labels.

- :func:`run_sample` (``cai sample``): K responses per prompt in one request, stored resumably, then
  unlabeled pairs in ``OUT/pairs.jsonl``.
- :func:`run_label` (``cai label``): AI comparisons of pairs against a constitution's preference
  questions: both orders, several principles, optional chain-of-thought; ``PreferencePair`` rows.
- :func:`run_agreement` (``cai eval agreement``): how often the AI labels agree with human ones.

Imports: core, models, principles, data, backends, judge and sl (the records it reads).
"""

from cai.feedback.agreement import run_agreement
from cai.feedback.config import AgreementConfig, CotConfig, LabelConfig, LabelOptions, SampleConfig
from cai.feedback.labeler import Labeler, run_label
from cai.feedback.sampling import run_sample

__all__ = [
    "AgreementConfig", "CotConfig", "LabelConfig", "LabelOptions", "Labeler", "SampleConfig",
    "run_agreement", "run_label", "run_sample",
]
