"""`cai.label` and `cai.judge`: the constitution as a judge, from Python."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cai.api.inputs import is_path, named_in_memory, pairs_file
from cai.api.models import ModelLike, backend_config, build, open_models, quiet_datasets
from cai.data.pairs import PreferencePair


@dataclass
class LabelResult:
    """What :func:`label` made: ``pairs`` (:class:`~cai.data.pairs.PreferencePair`, oriented to the
    chosen response, ``p_chosen`` the judge's soft label), ``dataset`` (the same rows as a
    ``datasets.Dataset`` in TRL's conversational preference format), ``summary`` (as
    ``OUT/summary.json``: counts, failures with their ids, the judge's health) and ``out``."""

    pairs: list[PreferencePair]
    dataset: Any
    summary: dict[str, Any]
    out: Path | None = None


def label(
    pairs: Any,
    *,
    constitution: str = "default",
    model: ModelLike = None,
    backend: str = "auto",
    options: dict[str, Any] | None = None,
    principles_dir: str | None = None,
    out: str | Path | None = None,
    **settings: Any,
) -> LabelResult:
    """AI preference labels (RL-CAI; Bai et al. 2022, section 4): the judge model compares each
    pair's two responses under the constitution's principles, in both orders, from the
    log-probabilities of the answer labels.

    ``pairs``: a file (`cai sample` output, any preference dataset, an SL-CAI run folder), a list
    of :class:`PreferencePair` or dicts with ``prompt``/``chosen``/``rejected``, or a
    ``datasets.Dataset``. ``model``: the judge (name, folder, :class:`BackendConfig` or loaded
    backend; default the embedded SmolLM2). ``settings``: any other
    :class:`~cai.feedback.config.LabelConfig` field (``few_shot``, ``both_orders``, ``limit``...).
    Raises :class:`~cai.core.errors.CaiError` on bad input.

    Example::

        import cai
        pair = {"prompt": "Is it safe to ride with a loose headset?",
                "chosen": "No: tighten it first.", "rejected": "Sure, ride on."}
        result = cai.label([pair], few_shot=0)
        result.pairs[0].p_chosen, result.summary["failed"]
    """
    from cai.feedback import LabelConfig, run_label
    from cai.feedback.labeler import iter_labels

    with tempfile.TemporaryDirectory(prefix="cai-label-") as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "run"
        path = pairs_file(pairs, Path(tmp))
        with named_in_memory(None if is_path(pairs) else path, "pairs"):
            config = build(LabelConfig, pairs=path, constitution=constitution, principles_dir=principles_dir,
                           out=str(folder), labeler=backend_config(model, backend, options), **settings)
            with open_models() as m, quiet_datasets():
                summary = run_label(config, backend=m.get(model, backend, options))
        labeled = list(iter_labels(folder / "labels.jsonl"))
        import datasets

        dataset = datasets.Dataset.from_list([p.row() for p in labeled]) if labeled else None
        return LabelResult(pairs=labeled, dataset=dataset, summary=summary, out=folder if out is not None else None)


@contextlib.contextmanager
def judge(
    model: ModelLike = None,
    *,
    constitution: str = "default",
    backend: str = "auto",
    options: dict[str, Any] | None = None,
    principles_dir: str | None = None,
    **judge_options: Any,
) -> Iterator[Any]:
    """``with cai.judge("smollm2-135m-instruct") as j: j.pairwise([...])``: a
    :class:`~cai.judge.Judge` over a constitution, its backend closed when the block ends (unless
    you passed a loaded backend). ``judge_options``: the Judge's own keywords (``both_orders``,
    ``scale``, ``abstain``...). See :mod:`cai.judge` for the item and verdict types and
    ``judge.health`` for the judge's health record.

    Example::

        import cai
        from cai.judge import PairItem
        with cai.judge(constitution="default") as j:
            [v] = j.pairwise([PairItem([{"role": "user", "content": "hi"}], "Hello!", "Go away.",
                                       [j.constitution.principles[0]])])
            v.p_x
    """
    from cai.judge import Judge
    from cai.sl.pipeline import resolve_constitution

    spec = resolve_constitution(constitution, principles_dir)
    with open_models() as m:
        j = Judge(m.get(model, backend, options), spec, **judge_options)
        yield j
