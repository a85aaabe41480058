"""Parsing of messy critique and revision outputs (pure functions, literal strings)."""

import pytest

from cai.sl.parsing import clean_revision, parse_critique, split_reasoning

REVISIONS = [
    # (raw output, finish_reason, expected text or None, expected failure kind)
    ("Paris is the capital of France.", "stop", "Paris is the capital of France.", None),
    ("Sure, here is a revised response:\nParis is the capital.", "stop", "Paris is the capital.", None),
    ("Sure! Here's the revised response:\n\nParis is the capital.", "stop", "Paris is the capital.", None),
    ("Certainly. Below is a rewritten version of the answer:\nParis.", "stop", "Paris.", None),
    ("Here is my revised answer.\nParis.", "stop", "Paris.", None),
    ("Revised response: Paris is the capital.", "stop", "Paris is the capital.", None),
    ("Revision: Paris is the capital.", "stop", "Paris is the capital.", None),
    ("RevisionRequest: Paris.", "stop", "Paris.", None),
    ('"Paris is the capital."', "stop", "Paris is the capital.", None),
    ("“Paris is the capital.”", "stop", "Paris is the capital.", None),
    ("```\nprint('hi')\n```", "stop", "print('hi')", None),
    ("Sure,\nParis is the capital.", "stop", "Paris is the capital.", None),
    ("Paris is the capital.\n\nI hope this revision addresses the critique.", "stop", "Paris is the capital.", None),
    ("Paris is the capital.\n---\nLet me know if you want changes.", "stop", "Paris is the capital.", None),
    # quotes inside the text are kept
    ('He said "hi" and left.', "stop", 'He said "hi" and left.', None),
    # a first line that merely mentions a response is content, not a lead-in
    ("Here is how to bake bread: mix flour and water.", "stop", "Here is how to bake bread: mix flour and water.", None),
    ("", "stop", None, "empty"),
    ("   \n ", "stop", None, "empty"),
    (None, None, None, "empty"),
    ("Paris is the cap", "length", None, "truncated"),
    ("Sure, here is a revised response:", "stop", None, "only-preamble"),
    ("Here's the rewritten response:\n\n   ", "stop", None, "only-preamble"),
    ("I'm sorry, but I cannot revise this response.", "stop", None, "refused"),
    ("I can't rewrite that.", "stop", None, "refused"),
    # reasoning models: <think> blocks are not the revision; a budget spent inside them is truncated
    ("<think>The critique says be kind.</think>\n\nParis is the capital.", "stop", "Paris is the capital.", None),
    ("<think>Hmm.</think>\nSure, here is a revised response:\nParis.", "stop", "Paris.", None),
    ("The critique wants a kinder tone.</think>Paris.", "stop", "Paris.", None),  # <think> was in the prompt
    ("<think>Let me think about the critique and", "length", None, "truncated"),
    ("<think>Done thinking.</think>", "stop", None, "empty"),
]


@pytest.mark.parametrize("raw,finish,expected,kind", REVISIONS)
def test_clean_revision(raw, finish, expected, kind):
    text, failure = clean_revision(raw, finish)
    assert (text, failure) == (expected, kind)


CRITIQUES = [
    ("The response is rude to the user.", "stop", "The response is rude to the user.", None, None),
    ("Critique: It invents a citation.", "stop", "It invents a citation.", None, None),
    ("It is rude.\nVerdict: revise", "stop", "It is rude.", "revise", None),
    ("Nothing harmful here.\nVerdict: ok", "stop", "Nothing harmful here.", "ok", None),
    ("Fine.\n**Verdict: OK**", "stop", "Fine.", "ok", None),
    ("Problems.\nVerdict - needs revision", "stop", "Problems.", "revise", None),
    ("Verdict: ok", "stop", "(no issues)", "ok", None),
    ("The response leaks an addr", "length", "The response leaks an addr", None, None),
    ("", "stop", None, None, "empty"),
    (None, None, None, None, "empty"),
    ("<think>Is it rude? Yes.</think>\nIt is rude.\nVerdict: revise", "stop", "It is rude.", "revise", None),
    ("<think>Is it rude? Let me weigh", "length", None, None, "truncated"),
    ("<think>x</think>", "length", None, None, "truncated"),
]


@pytest.mark.parametrize("raw,finish,expected,verdict,kind", CRITIQUES)
def test_parse_critique(raw, finish, expected, verdict, kind):
    assert parse_critique(raw, finish) == (expected, verdict, kind)


@pytest.mark.parametrize("raw,answer,reasoning,unclosed", [
    ("plain text", "plain text", None, False),
    ("a < b and b > c", "a < b and b > c", None, False),
    ("<think>r</think>\n\nanswer", "answer", "r", False),
    ("<THINKING>r</THINKING>answer", "answer", "r", False),
    ("r1</think>a<think>r2</think>b", "a\n\nb", "r1\n\nr2", False),
    ("<think>r", "", "r", True),
    ("answer first <think>then more", "answer first", "then more", True),
])
def test_split_reasoning(raw, answer, reasoning, unclosed):
    assert split_reasoning(raw) == (answer, reasoning, unclosed)
