"""The Python API: what a script or notebook calls, the same functions `cai` commands use.

    import cai
    result = cai.generate(["How do I pick a bike size?"], rounds=1)   # SL-CAI: records + exports
    labels = cai.label("pairs.jsonl")                                  # RL-CAI: AI preference labels
    with cai.judge() as j: ...                                          # the constitution as a judge
    cai.run("recipes/loop-quickstart.yaml")                            # the whole loop (cai.loop)

Inputs may be in memory (lists, ``datasets.Dataset``) or files; results are typed (records, pairs)
and carry ``datasets.Dataset`` exports in TRL's formats; ``out=`` keeps a resumable run folder;
every backend a call loads is closed when it returns.

Imports: core, models, principles, data, backends, judge, sl, feedback, inverse, humans, train, evals.
(:func:`cai.run` lives in :mod:`cai.loop.python_api`: the loop is a room above this one.)
"""

from cai.api.evaluate import evaluate
from cai.api.generate import GenerateResult, generate
from cai.api.label import LabelResult, judge, label
from cai.api.models import ModelLike, open_models

__all__ = ["GenerateResult", "LabelResult", "ModelLike", "evaluate", "generate", "judge", "label", "open_models"]
