"""A guard classifier trained from the same principle files: data generated and judged from the
constitution (`cai guard data`), a small sequence classifier (`cai guard train`), its catch rate and
false-positive rate (`cai guard eval`), and the guard at serving time (:class:`Guard`), usable as a
reward and as a detector.

Source: Anthropic, "Constitutional Classifiers: Defending against Universal Jailbreaks" (2025).

    from cai.guard import Guard
    guard = Guard("runs/guard")                       # a `cai guard train` folder
    guard.scores(["How do I ..."], "input")           # P(violation) per text
    guard.flags(["Sure, here is how ..."], "output")  # at the calibrated threshold

Imports: core, models, principles, data, backends, judge, sl.
"""

from cai.guard.classify import MARKERS, Guard, marked, threshold_for
from cai.guard.config import GuardDataConfig, GuardEvalConfig, GuardTrainConfig
from cai.guard.data import run_guard_data, split_principles
from cai.guard.evaluate import run_guard_eval, suite_prompts
from cai.guard.train import read_rows, train_guard

__all__ = ["MARKERS", "Guard", "GuardDataConfig", "GuardEvalConfig", "GuardTrainConfig", "marked", "read_rows",
           "run_guard_data", "run_guard_eval", "split_principles", "suite_prompts", "threshold_for", "train_guard"]
