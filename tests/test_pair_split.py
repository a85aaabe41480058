"""Every spelling of a preference row gives one clean pair (issue 11, items 1-4).

Empty responses are dropped and counted by every reader and never written; a prompt repeated
inside chosen/rejected is stripped (same pair, same id); implicit prompts must split into
assistant-only responses; HH transcripts, TRL's plain-string implicit format and CSV are read by
every command that reads pairs.
"""

from __future__ import annotations

import json

import pytest

from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, pair_from_row, read_pairs, write_pairs
from cai.data.prompts import parse_hh_transcript

U = [{"role": "user", "content": "Name a colour."}]
BLUE = [{"role": "assistant", "content": "Blue."}]
RED = [{"role": "assistant", "content": "Red."}]


def hh(*turns: str, tail: str = "") -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns)) + tail


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- 1. empty responses


@pytest.mark.parametrize("tail", ["\n\nAssistant:", "\n\nAssistant: ", "\n\nAssistant:  \n"])
def test_hh_transcript_ending_in_an_empty_assistant_turn(tail):
    turns = parse_hh_transcript("\n\nHuman: Tell me a joke" + tail)
    assert turns == [{"role": "user", "content": "Tell me a joke"}, {"role": "assistant", "content": ""}]


def test_every_reader_drops_and_counts_empty_responses(tmp_path):
    rows = [
        {"prompt": U, "chosen": BLUE, "rejected": RED},
        {"prompt": U, "chosen": "", "rejected": RED},
        {"prompt": U, "chosen": BLUE, "rejected": [{"role": "assistant", "content": " \n "}]},
        {"prompt": U, "chosen": [], "rejected": RED},
        {"chosen": hh("Tell me a joke", tail="\n\nAssistant:"), "rejected": hh("Tell me a joke", "No.")},
        {"chosen": hh("Tell me a joke", tail="\n\nAssistant: "), "rejected": hh("Tell me a joke", "No.")},
    ]
    counts: dict = {}
    pairs = list(read_pairs(write_jsonl(tmp_path / "p.jsonl", rows), counts=counts))
    assert [p.chosen_text for p in pairs] == ["Blue."]
    assert counts["empty_response"] == 5 and counts["invalid"] == 0


def test_write_pairs_never_writes_an_empty_response(tmp_path):
    good = PreferencePair(prompt=U, chosen=BLUE, rejected=RED, source="human")
    empty = PreferencePair(prompt=U, chosen=[{"role": "assistant", "content": ""}], rejected=RED, source="human")
    assert empty.empty_response and not good.empty_response
    assert write_pairs([good, empty], tmp_path / "out") == 1
    assert [p.id for p in read_pairs(tmp_path / "out")] == [good.id]


# ---------------------------------------------------------------- 2. prompt repeated inside the responses


def test_prompt_repeated_inside_responses_gives_the_same_pair_and_id(tmp_path):
    system = [{"role": "system", "content": "Be brief."}]
    clean = {"prompt": system + U, "chosen": BLUE, "rejected": RED}
    repeated = {"prompt": system + U, "chosen": system + U + BLUE, "rejected": system + U + RED}
    as_string = {"prompt": U[0]["content"], "chosen": U + BLUE, "rejected": U + RED}
    counts: dict = {}
    a = pair_from_row(clean, counts=counts)
    assert counts.get("prompt_repeated", 0) == 0
    b = pair_from_row(repeated, counts=counts)
    assert counts["prompt_repeated"] == 1
    assert (b.prompt, b.chosen, b.rejected, b.id) == (a.prompt, a.chosen, a.rejected, a.id)
    c = pair_from_row(as_string, counts=counts)
    assert c.chosen_text == "Blue." and [m.role for m in c.prompt] == ["user"] and counts["prompt_repeated"] == 2

    counts = {}
    pairs = list(read_pairs(write_jsonl(tmp_path / "p.jsonl", [clean, repeated]), counts=counts))
    assert pairs[0].id == pairs[1].id and counts["prompt_repeated"] == 1


# ---------------------------------------------------------------- 3. implicit prompts that do not split cleanly


@pytest.mark.parametrize("row, message", [
    # rejected = chosen plus one more user turn: the "response" would end in a user turn
    ({"chosen": U + BLUE, "rejected": U + BLUE + [{"role": "user", "content": "Thanks!"}]},
     "'rejected' has a user turn (message 3)"),
    ({"chosen": U + BLUE, "rejected": U + [{"role": "user", "content": "Again?"}, *RED]},
     "'rejected' has a user turn (message 2)"),
    ({"prompt": U, "chosen": [{"role": "user", "content": "Other"}, *BLUE], "rejected": RED},
     "'chosen' has a user turn (message 1)"),
    ({"chosen": "Yes.", "rejected": "No."}, "plain-string chosen/rejected share no leading text"),
    ({"chosen": U + BLUE, "rejected": "Red."}, "only one of chosen/rejected is a conversation"),
])
def test_rows_that_do_not_split_cleanly_are_errors(row, message, tmp_path):
    with pytest.raises(ValueError) as info:
        pair_from_row(row)
    assert message in str(info.value)
    with pytest.raises(CaiError) as err:  # a reader names file and line
        list(read_pairs(write_jsonl(tmp_path / "p.jsonl", [{"prompt": U, "chosen": BLUE, "rejected": RED}, row])))
    assert err.value.line == 2 and "p.jsonl" in err.value.format() and message in err.value.format()


@pytest.mark.parametrize("chosen, rejected, prompt, responses", [
    ("The sky is blue.", "The sky is green.", "The sky is", ("blue.", "green.")),
    ("The sky is blue.", "The sky is black.", "The sky is", ("blue.", "black.")),  # TRL would cut after "bl"
    ("Q: 2+2?\nA: 4", "Q: 2+2?\nA: 5", "Q: 2+2?\nA:", ("4", "5")),
    ("The sky is blue.", "The sky is blue. And clear.", "The sky is", ("blue.", "blue. And clear.")),
    ("The sky is blue.", "The sky is blue.", "The sky is", ("blue.", "blue.")),  # identical: a reader's call
])
def test_trl_standard_implicit_prompt(chosen, rejected, prompt, responses):
    pair = pair_from_row({"chosen": chosen, "rejected": rejected})
    assert [(m.role, m.content) for m in pair.prompt] == [("user", prompt)]
    assert (pair.chosen_text, pair.rejected_text) == responses
    assert [m.role for m in pair.chosen + pair.rejected] == ["assistant", "assistant"]


# ---------------------------------------------------------------- 4. what `humans import` reads, every reader reads


def test_raw_hh_rows_read_like_the_hh_importer(tmp_path):
    from cai.humans.importers import import_labels

    rows = [{"chosen": hh("What is 2+2?", "4.", "And 3+3?", "6."),
             "rejected": hh("What is 2+2?", "4.", "And 3+3?", "7, roughly.")},
            {"chosen": hh("Say hi", "Hi!"), "rejected": hh("Say hi", "Go away.")}]
    src = write_jsonl(tmp_path / "hh.jsonl", rows)
    direct = list(read_pairs(src))
    import_labels(src, "hh", tmp_path / "imported")
    imported = list(read_pairs(tmp_path / "imported"))
    assert [p.id for p in direct] == [p.id for p in imported]
    assert [(m.role, m.content) for m in direct[0].prompt] == [
        ("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?")]
    assert direct[0].chosen_text == "6."


def test_hh_prompt_column_and_csv_files(tmp_path):
    row = {"prompt": "\n\nHuman: Name a colour.\n\nAssistant:", "chosen": " Blue.", "rejected": " Red."}
    pair = pair_from_row(row)
    assert pair.id == pair_from_row({"prompt": U, "chosen": BLUE, "rejected": RED}).id

    import csv

    path = tmp_path / "p.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "chosen", "rejected"])
        w.writerow(["Name a colour.", "Blue.", "Red."])
        w.writerow(["Name a colour.", "", "Red."])
    counts: dict = {}
    [got] = list(read_pairs(path, counts=counts))
    assert got.id == pair.id and counts["empty_response"] == 1

    other = tmp_path / "q.csv"
    other.write_text("question,a,b\nx,y,z\n")
    with pytest.raises(CaiError) as info:
        list(read_pairs(other))
    assert "cai humans import --format csv" in info.value.format() and info.value.line == 2


# ---------------------------------------------------------------- later stages: trainers' loader, labeling page


def test_trainer_loader_and_labeling_store_drop_empty_responses(tmp_path):
    from cai.humans.store import LabelStore
    from cai.train.data import load_preference_splits

    rows = [{"prompt": U, "chosen": BLUE, "rejected": RED},
            {"prompt": U, "chosen": U + BLUE, "rejected": U + [{"role": "assistant", "content": "Green."}]},
            {"prompt": U, "chosen": BLUE, "rejected": ""}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    counts: dict = {}
    train, test = load_preference_splits(path, counts=counts)
    assert len(train) == 2 and test == [] and counts["empty_response"] == 1 and counts["prompt_repeated"] == 1
    assert all(m.role == "assistant" for p in train for m in p.chosen + p.rejected)

    only_empty = write_jsonl(tmp_path / "e.jsonl", rows[2:])
    with pytest.raises(CaiError, match="1 pairs with an empty response dropped"):
        load_preference_splits(only_empty)

    empty = PreferencePair(prompt=U, chosen=BLUE, rejected=[{"role": "assistant", "content": ""}], source="x")
    store = LabelStore(tmp_path / "l.sqlite")
    got = store.add_tasks([empty, pair_from_row(rows[0])], "t")
    assert (got["added"], got["empty_response"]) == (1, 1)


def test_hh_prompts_ending_in_assistant_cue(tmp_path):
    """Prompt files in HH form often end with the empty "Assistant:" cue: it must not stick to the human turn."""
    from cai.data.prompts import PromptReader

    transcript = "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Joke?\n\nAssistant:"
    path = write_jsonl(tmp_path / "hh.jsonl", [{"prompt": transcript}])
    [row] = PromptReader(path, "hh", hh_turns="all")
    assert row.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                            {"role": "user", "content": "Joke?"}]


def test_sl_export_and_label_inputs_leave_out_whitespace_only_revisions(tmp_path):
    """An SL-CAI record whose final revision is whitespace only never becomes an ai-revision pair."""
    from collections import Counter

    from cai.feedback.inputs import iter_inputs
    from cai.data.records import Record
    from cai.sl.export import preference_rows

    records = [Record(id="a", prompt=U, draft="Red.", final="Blue."),
               Record(id="b", prompt=U, draft="Red!", final=" \n ")]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    assert [r["record_id"] for r in preference_rows(path)] == ["a"]
    counts: Counter = Counter()
    assert [p.record_id for p in iter_inputs(tmp_path, counts=counts)] == ["a"]
