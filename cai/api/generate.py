"""`cai.generate`: SL-CAI (draft, critique, revise) from Python, on prompts in memory or a file."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cai.api.inputs import PromptsLike, check_same_prompts, named_in_memory, prompts_file
from cai.api.models import ModelLike, backend_config, build, open_models, quiet_datasets
from cai.data.records import Record

log = logging.getLogger("cai")


@dataclass
class GenerateResult:
    """What :func:`generate` made.

    ``records``: one :class:`~cai.data.records.Record` per prompt (draft, critique/revision steps,
    final, status and the reasons when not ``ok``, provenance). ``summary``: the same dict as
    ``OUT/summary.json``. ``sft`` and ``preferences``: the exports as ``datasets.Dataset`` in TRL's
    formats (``messages``; ``prompt``/``chosen``/``rejected`` plus ``p_chosen``, ``source``,
    ``principle_ids``, provenance columns). ``out``: the run folder, or None when the call used a
    temporary one.
    """

    records: list[Record]
    summary: dict[str, Any]
    sft: Any = None
    preferences: Any = None
    out: Path | None = None
    failed: list[Record] = field(default_factory=list)

    @property
    def ok(self) -> list[Record]:
        """Records that passed every check."""
        return [r for r in self.records if r.status == "ok"]


def generate(
    prompts: PromptsLike,
    *,
    constitution: str = "default",
    model: ModelLike = None,
    critic: ModelLike = None,
    feedback: ModelLike = None,
    backend: str = "auto",
    options: dict[str, Any] | None = None,
    principles_dir: str | None = None,
    out: str | Path | None = None,
    **settings: Any,
) -> GenerateResult:
    """Draft, critique and revise each prompt against a constitution's principles (SL-CAI; Bai et
    al. 2022, "Constitutional AI", section 3).

    ``prompts``: a prompts file path, a list of strings or message lists, or a ``datasets.Dataset``
    with a ``prompt`` column. ``constitution``: a name (``default``, ``harmless``) or a YAML path.
    ``model``/``critic``/``feedback``: a model name, folder, :class:`BackendConfig` or loaded
    backend (default: the embedded SmolLM2; the critic defaults to the policy, the feedback judge
    of ``verify=True`` to the critic). ``out``: a run folder to keep (a rerun resumes it); None
    uses a temporary one. ``settings``: any other :class:`~cai.sl.config.GenerateConfig` field
    (``rounds``, ``sampling``, ``verify``, ``limit``...). Backends the call loads are closed when
    it returns.

    Raises :class:`~cai.core.errors.CaiError` (one line naming the field or row) on bad input.

    Example::

        import cai
        result = cai.generate(["How do I pick a bike size?"], constitution="default",
                              rounds=1, sampling={"max_tokens": 64})
        result.records[0].final, result.preferences
    """
    with tempfile.TemporaryDirectory(prefix="cai-generate-") as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "run"
        path, id_column = prompts_file(prompts, Path(tmp))
        if out is not None and id_column:
            check_same_prompts(folder, path)
        if id_column and "id_column" not in settings:
            settings["id_column"] = id_column
        with named_in_memory(path if id_column else None, "prompts"):
            return _generate(path, folder, out, constitution, principles_dir, model, critic, feedback, backend,
                             options, settings)


def _generate(path, folder, out, constitution, principles_dir, model, critic, feedback, backend, options, settings):
    """The run itself, once the prompts are in a file (see :func:`generate`)."""
    from cai.sl import GenerateConfig, run_generate

    config = build(
        GenerateConfig, constitution=constitution, principles_dir=principles_dir, prompts=path, out=str(folder),
        policy=backend_config(model, backend, options),
        critic=backend_config(critic, backend, options) if critic is not None else None,
        feedback=backend_config(feedback, backend, options) if feedback is not None else None,
        **settings,
    )
    with open_models() as m:
        policy = m.get(model, backend, options)
        critic_b = m.get(critic, backend, options) if critic is not None else policy
        loaded = (policy, critic_b)
        if config.verify:
            loaded += (m.get(feedback, backend, options) if feedback is not None else critic_b,)
        log.info("cai.generate: %s -> %s", path, folder)
        with quiet_datasets():
            summary = run_generate(config, backends=loaded)
    return _result(folder, summary, keep=out is not None)


def _result(folder: Path, summary: dict, keep: bool) -> GenerateResult:
    from cai.data.store import iter_records

    records = list(iter_records(folder))
    sft = preferences = None
    if (folder / "sft" / "hf").exists() or (folder / "preferences" / "hf").exists():
        import datasets

        if (folder / "sft" / "hf").exists():
            sft = datasets.load_from_disk(str(folder / "sft" / "hf"))
        if (folder / "preferences" / "hf").exists():
            preferences = datasets.load_from_disk(str(folder / "preferences" / "hf"))
        if not keep:  # the temporary folder goes away: hold the rows in memory
            sft, preferences = (datasets.Dataset.from_list(d.to_list(), features=d.features) if d is not None
                                else None for d in (sft, preferences))
    return GenerateResult(records=records, summary=summary, sft=sft, preferences=preferences,
                          out=folder if keep else None, failed=[r for r in records if r.status == "failed"])
