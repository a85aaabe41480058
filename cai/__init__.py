"""cai: Constitutional AI with principles as files.

The Python API (the same functions the `cai` commands call)::

    import cai
    result = cai.generate(["How do I pick a bike size?"], rounds=1)   # SL-CAI records + exports
    labels = cai.label(result.preferences)                             # AI preference labels
    with cai.judge() as j: ...                                          # the constitution as a judge
    cai.run("recipes/loop-quickstart.yaml")                            # the whole loop + report

Importing :mod:`cai` is cheap: the API's names are imported on first use, and heavy optional
dependencies (vLLM, TRL) only by the modules that need them.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("cai-constitution")  # the distribution's name; `cai` on the index is another project
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

_API = {
    "generate": "cai.api", "label": "cai.api", "judge": "cai.api", "open_models": "cai.api",
    "GenerateResult": "cai.api", "LabelResult": "cai.api", "run": "cai.loop.python_api",
    "Constitution": "cai.principles.constitution", "Principle": "cai.principles.principle",
    "Record": "cai.data.records", "PreferencePair": "cai.data.pairs", "BackendConfig": "cai.backends", "SamplingConfig": "cai.backends",
    "load_backend": "cai.backends", "GenerateConfig": "cai.sl", "LabelConfig": "cai.feedback",
    "Judge": "cai.judge", "Recipe": "cai.loop.recipe", "load_recipe": "cai.loop.recipe",
    "evaluate": "cai.api", "BehaviorConfig": "cai.evals.config",
    "train_sft": "cai.train.sft", "train_dpo": "cai.train.dpo", "train_reward": "cai.train.reward",
    "SFTRecipe": "cai.train.config", "DPORecipe": "cai.train.config", "RewardRecipe": "cai.train.config",
    "train_ppo": "cai.train.ppo", "PPOConfig": "cai.train.ppo", "train_online": "cai.train.online",
    "OnlineConfig": "cai.train.online", "run_redteam": "cai.redteam", "RedteamConfig": "cai.redteam",
    "Guard": "cai.guard", "run_guard_data": "cai.guard", "train_guard": "cai.guard", "run_guard_eval": "cai.guard",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    """The API's names, imported on first use (PEP 562)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'cai' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))


import sys as _sys  # noqa: E402
from types import ModuleType as _ModuleType  # noqa: E402


class _JudgeModule(_ModuleType):
    """The ``cai.judge`` package, callable as :func:`cai.api.judge`. Python sets ``cai.judge`` to the
    subpackage whenever it is imported (anything that judges imports it), which hid the API's
    ``cai.judge(...)`` after its first use; a callable package serves both."""

    def __call__(self, *args, **kwargs):
        import importlib

        return importlib.import_module("cai.api").judge(*args, **kwargs)


class _CaiModule(_ModuleType):
    def __getattribute__(self, name):
        if name == "judge":
            import importlib

            module = importlib.import_module("cai.judge")
            if not isinstance(module, _JudgeModule):
                module.__class__ = _JudgeModule
            return module
        return super().__getattribute__(name)


_sys.modules[__name__].__class__ = _CaiModule
