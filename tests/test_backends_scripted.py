"""The scripted backend that other unit tests use in place of a model."""

from __future__ import annotations

import pytest

from cai.backends import SamplingConfig, load_backend
from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError


def test_replies_in_order_cycling_and_calls_recorded():
    b = ScriptedBackend.scripted(replies=["one", "two", "three"])
    out = b.generate(["a", "b"], SamplingConfig(n=2))
    assert [[c.text for c in row] for row in out] == [["one", "two"], ["three", "one"]]
    assert b.calls[0]["method"] == "generate"
    assert b.calls[0]["conversations"][1] == [{"role": "user", "content": "b"}]
    assert b.calls[0]["sampling"].n == 2


def test_script_exhausted_without_cycle():
    b = ScriptedBackend.scripted(replies=["only"], cycle=False)
    b.generate(["a"])
    with pytest.raises(CaiError, match="out of scripted replies after 1"):
        b.generate(["b"])


def test_echo_stop_and_max_tokens():
    b = load_backend(backend="scripted", model="scripted")
    [[echo]] = b.generate(["say this please"])
    assert (echo.text, echo.completion_tokens, echo.finish_reason) == ("say this please", 3, "stop")
    [[cut]] = b.generate(["one two three four"], SamplingConfig(max_tokens=2))
    assert (cut.text, cut.finish_reason) == ("one two", "length")
    [[stopped]] = b.generate(["answer ### trailer"], SamplingConfig(stop=["###"]))
    assert stopped.text == "answer "


def test_function_replies_see_the_conversation():
    b = ScriptedBackend.scripted(respond=lambda conv, j: f"{conv[-1]['content'].upper()}-{j}")
    assert b.generate(["hi"], SamplingConfig(n=2))[0][1].text == "HI-1"


def test_choices_scripted_normalized_or_uniform():
    b = ScriptedBackend.scripted(choices=[{"A": 3, "B": 1}, {"A": 1, "B": 1, "C": 5}])
    p = b.score_choices(["q1", "q2", "q3"], ["A", "B"])
    assert p == [{"A": 0.75, "B": 0.25}, {"A": 0.5, "B": 0.5}, {"A": 0.75, "B": 0.25}]
    with pytest.raises(CaiError):  # the second table has no weight on A/B
        ScriptedBackend.scripted(choices=[{"1": 1.0}]).score_choices(["q"], ["A", "B"])
    uniform = load_backend(backend="scripted", model="s").score_choices(["q"], ["1", "2", "3", "4"])
    assert uniform == [{"1": 0.25, "2": 0.25, "3": 0.25, "4": 0.25}]
    scored = ScriptedBackend.scripted(score=lambda conv, labels: {labels[-1]: 1.0})
    assert scored.score_choices(["q"], ["A", "B"]) == [{"A": 0.0, "B": 1.0}]
    assert b.calls[-1]["options"] == [["A", "B"]] * 3


def test_empty_batches():
    b = ScriptedBackend.scripted(replies=["x"])
    assert b.generate([]) == [] and b.score_choices([], ["A", "B"]) == []
