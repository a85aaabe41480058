"""Where the prompt ends and the two responses begin, for every spelling of a preference row.

The spellings every pairs reader accepts (``read_pairs``, so every command that reads pairs):

- explicit prompt (TRL): ``prompt`` plus ``chosen``/``rejected``, each a string or a list of
  ``{role, content}``. A ``prompt`` string that is an HH transcript (``"Human: …"``) becomes its
  turns. A leading copy of the prompt repeated inside both responses (a common TRL-style mistake)
  is stripped, so both spellings give the same pair and the same id.
- implicit prompt, conversational (TRL): ``chosen``/``rejected`` are whole conversations; the
  longest shared leading run of messages is the prompt.
- implicit prompt, Anthropic HH-RLHF: ``chosen``/``rejected`` are two transcript strings
  (``"\\n\\nHuman: …\\n\\nAssistant: …"``) that differ only in the last assistant turn.
- implicit prompt, standard (TRL): ``chosen``/``rejected`` are plain strings sharing a leading
  text. TRL's ``extract_prompt`` (1.16) cuts at the first differing character (keeping a space
  before it with the response); here the cut moves back to the start of that word, so a response
  never starts mid-word (``"The sky is blue."`` / ``"The sky is black."`` -> prompt
  ``"The sky is"``, responses ``"blue."`` / ``"black."``; TRL would cut after ``"bl"``).

After the split, both responses must hold assistant turns only: a response that contains a user
or system turn (e.g. ``rejected`` = ``chosen`` plus one more user turn) is a ``ValueError``.
Responses that are empty are *not* an error here: the readers drop and count them
(``PreferencePair.empty_response``).
"""

from __future__ import annotations

from typing import Any

from cai.data.content import MEDIA_COLUMNS, check_media, text_content  # noqa: F401  (re-exported)
from cai.data.prompts import parse_hh_transcript

Messages = list[dict]


def _canon(m: dict) -> tuple:
    return (m.get("role"), str(m.get("content", "")).strip())


def messages_of(value: Any, role: str, field: str) -> Messages:
    """A TRL column value as messages: a plain string becomes one message of ``role``; typed text
    parts become text (:func:`text_content`)."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return [{**m, "content": text_content(m["content"], f"'{field}' message {i + 1}")} if "content" in m else m
                for i, m in enumerate(value)]
    raise ValueError(f"'{field}' must be a string or a list of {{role, content}} messages")


def prompt_messages(value: Any) -> Messages:
    """The ``prompt`` column as messages; an HH transcript string becomes its turns (a trailing
    empty ``Assistant:`` turn, the cue for the response, is left out)."""
    if isinstance(value, str) and value.lstrip().startswith("Human:"):
        turns = parse_hh_transcript(value)
        while turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
            turns.pop()
        if turns:
            return turns
    return messages_of(value, "user", "prompt")


def check_responses(chosen: Messages, rejected: Messages, offset: int = 0) -> None:
    """Both responses must be assistant turns only. ``offset``: messages before them (for the message
    number in the error). Raises ValueError naming the side and the message."""
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        for i, m in enumerate(side):
            if m.get("role") in ("user", "system"):
                raise ValueError(f"'{name}' has a {m['role']} turn (message {offset + i + 1}) after the prompt: "
                                 "a response holds only assistant turns")


def strip_repeated_prompt(prompt: Messages, chosen: Messages, rejected: Messages) -> tuple[Messages, Messages, bool]:
    """Remove a leading copy of ``prompt`` from each response that starts with it (and has more after it).

    Returns (chosen, rejected, whether anything was stripped).
    """
    head = [_canon(m) for m in prompt]
    stripped = False
    out = []
    for side in (chosen, rejected):
        if head and len(side) > len(head) and [_canon(m) for m in side[:len(head)]] == head:
            side, stripped = side[len(head):], True
        out.append(side)
    return out[0], out[1], stripped


def split_hh(chosen_text: str, rejected_text: str) -> tuple[Messages, Messages, Messages]:
    """Two HH transcripts as (prompt, chosen, rejected) messages. Raises ValueError if they are not
    two transcripts sharing every turn but the final assistant one(s)."""
    sides = []
    for name, text in (("chosen", chosen_text), ("rejected", rejected_text)):
        if not isinstance(text, str):
            raise ValueError(f"'{name}' must be a transcript string, got {type(text).__name__}")
        messages = parse_hh_transcript(text)
        if not messages:
            raise ValueError(f"'{name}' is not an HH transcript ('\\n\\nHuman: …\\n\\nAssistant: …')")
        sides.append(messages)
    chosen, rejected = sides
    if chosen == rejected:
        return chosen[:-1], chosen[-1:], rejected[-1:]  # identical: the caller drops it
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    for name, rest in (("chosen", chosen), ("rejected", rejected)):
        if not rest:
            raise ValueError(f"'{name}' has no final assistant turn of its own")
    if not prompt or prompt[-1]["role"] != "user":
        raise ValueError(f"'chosen' and 'rejected' differ before the last assistant turn (at turn {n + 1})")
    for name, rest in (("chosen", chosen), ("rejected", rejected)):
        if any(m["role"] != "assistant" for m in rest):
            raise ValueError(f"'{name}' has a human turn after the transcripts differ (turn {n + 1})")
    return prompt, chosen, rejected


def is_hh_transcript(text: Any) -> bool:
    return isinstance(text, str) and text.lstrip().startswith("Human:") and bool(parse_hh_transcript(text))


def split_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """TRL's standard implicit prompt: the shared leading text of two strings, cut at a word start.

    Raises ValueError when nothing is shared (there is no prompt to find).
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    while n > 0 and not chosen[n - 1].isspace():  # cut at the start of the word where they differ
        n -= 1
    prompt = chosen[:n]
    if not prompt.strip():
        raise ValueError("no 'prompt' column and the plain-string chosen/rejected share no leading text "
                         "(TRL's standard implicit-prompt format needs one): add a 'prompt' column")
    return prompt.strip(), chosen[n:].strip(), rejected[n:].strip()


def split_implicit(chosen: Messages, rejected: Messages) -> tuple[Messages, Messages, Messages]:
    """TRL's conversational implicit prompt: the longest shared leading run of messages (each side
    keeps at least its last message). Raises ValueError if nothing is shared or a response holds a
    user/system turn."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and _canon(chosen[n]) == _canon(rejected[n]):
        n += 1
    if n == 0:
        raise ValueError("no 'prompt' column and chosen/rejected share no leading messages")
    prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    check_responses(chosen, rejected, offset=n)
    return prompt, chosen, rejected


def split_row(prompt: Any, chosen: Any, rejected: Any) -> tuple[Messages, Messages, Messages, bool]:
    """(prompt, chosen, rejected, prompt_was_repeated) for any accepted spelling (see the module doc).

    Raises ValueError naming the field when the row cannot be split cleanly.
    """
    if prompt is not None:
        p = prompt_messages(prompt)
        c = messages_of(chosen, "assistant", "chosen")
        r = messages_of(rejected, "assistant", "rejected")
        c, r, repeated = strip_repeated_prompt(p, c, r)
        check_responses(c, r, offset=len(p) if repeated else 0)
        return p, c, r, repeated
    if isinstance(chosen, str) and isinstance(rejected, str):
        if is_hh_transcript(chosen) and is_hh_transcript(rejected):
            p, c, r = split_hh(chosen, rejected)
            return p, c, r, False
        text, c_text, r_text = split_text(chosen, rejected)
        return ([{"role": "user", "content": text}], [{"role": "assistant", "content": c_text}],
                [{"role": "assistant", "content": r_text}], False)
    c = messages_of(chosen, "assistant", "chosen")
    r = messages_of(rejected, "assistant", "rejected")
    if isinstance(chosen, str) or isinstance(rejected, str):
        raise ValueError("no 'prompt' column and only one of chosen/rejected is a conversation: "
                         "give both as strings or both as lists of messages")
    p, c, r = split_implicit(c, r)
    return p, c, r, False


SCORE_TIES = "score_ties"  # rows whose two ratings were equal: p_chosen 0.5 (or dropped, ties="drop")
SCORE_COLUMNS = "score_columns"  # the rating columns read, e.g. "score_chosen, score_rejected"
RATING_COLUMNS = (("score_chosen", "score_rejected"), ("chosen_score", "rejected_score"),
                  ("chosen-rating", "rejected-rating"), ("chosen_rating", "rejected_rating"))
"""Spellings of per-response ratings in published preference data (UltraFeedback binarized,
its mirrors): kept on the pair as ``score_chosen``/``score_rejected``; equal ratings are a tie."""


def read_ratings(data: dict, counts: dict | None) -> None:
    """Per-response ratings (:data:`RATING_COLUMNS`) become ``score_chosen``/``score_rejected``; equal
    ratings make the pair a tie (``p_chosen`` 0.5) unless the row gives ``p_chosen`` itself. The
    columns read are named in ``counts[SCORE_COLUMNS]``, ties counted in ``counts[SCORE_TIES]``."""
    for a, b in RATING_COLUMNS:
        if a in data and b in data:
            break
    else:
        return
    x, y = (_rating(data.pop(c)) for c in (a, b))  # a CSV cell is text: '4', ' 4.5 ', '' (none)
    if x is None and y is None:  # our own rows without ratings
        return
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
        raise ValueError(f"{a}/{b}: ratings must be numbers, got {x!r} and {y!r}")
    data["score_chosen"], data["score_rejected"] = float(x), float(y)
    if counts is not None:
        counts[SCORE_COLUMNS] = f"{a}, {b}"
    if x == y and data.get("p_chosen") is None:
        data["p_chosen"] = 0.5
        if counts is not None:
            counts[SCORE_TIES] = counts.get(SCORE_TIES, 0) + 1


def _rating(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return float(value) if value.strip() else None
    except ValueError:
        return value  # not a number: reported with the column names
