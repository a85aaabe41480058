"""`cai humans import`: HH-RLHF (JSONL and .gz), TRL preference data, CSV with a column map."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from cai.cli.main import main
from cai.core.errors import CaiError
from cai.humans.importers import CsvMapping, import_labels, split_hh
from cai.data.pairs import read_pairs


def hh(*turns: str) -> str:
    """An HH transcript from alternating human/assistant turns."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


HH_ROWS = [
    {"chosen": hh("What is 2+2?", "4.", "And 3+3?", "6."),
     "rejected": hh("What is 2+2?", "4.", "And 3+3?", "7, roughly.")},
    {"chosen": hh("Say hi", "Hi there!\n\nHow can I help?"), "rejected": hh("Say hi", "Go away.")},
    {"chosen": hh("Same?", "Yes."), "rejected": hh("Same?", "Yes.")},  # identical: dropped
]


def write_jsonl(path, rows, gz=False):
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("gz", [False, True])
def test_hh_rows_become_prompt_and_final_turns(tmp_path, capsys, gz):
    src = write_jsonl(tmp_path / ("hh.jsonl.gz" if gz else "hh.jsonl"), HH_ROWS, gz=gz)
    code, out, err = run_cli(capsys, "humans", "import", "--format", "hh", str(src), "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "read 3 rows: wrote 2 pairs" in out and "skipped 0 invalid, dropped 1 identical" in out

    pairs = list(read_pairs(tmp_path / "out"))
    assert [p.origin for p in pairs] == [f"{src.name}:1", f"{src.name}:2"]
    first, second = pairs
    assert [(m.role, m.content) for m in first.prompt] == [
        ("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?")]
    assert first.chosen_text == "6." and first.rejected_text == "7, roughly."
    assert second.chosen_text == "Hi there!\n\nHow can I help?"  # blank lines inside a turn stay
    assert all(p.source == "human" and p.p_chosen == 1.0 for p in pairs)
    assert json.loads(first.provenance)["format"] == "hh"

    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out" / "hf"))
    assert ds.num_rows == 2 and ds[0]["chosen"] == [{"role": "assistant", "content": "6."}]
    assert ds[0]["id"] == first.id


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('["a", "list"]', "must be a JSON object"),
    (json.dumps({"chosen": hh("x", "y")}), "missing column(s) rejected"),
    (json.dumps({"chosen": "just text", "rejected": hh("x", "y")}), "'chosen' is not an HH transcript"),
    (json.dumps({"chosen": 3, "rejected": hh("x", "y")}), "'chosen' must be a transcript string"),
    (json.dumps({"chosen": hh("x", "y"), "rejected": hh("other", "y")}), "differ before the last assistant turn"),
    (json.dumps({"chosen": hh("x", "y", "more", "z"), "rejected": hh("x", "w")}), "has a human turn after"),
    (json.dumps({"chosen": hh("x", "y"), "rejected": hh("x", "y", "more", "z")}), "'chosen' has no final assistant"),
])
def test_hh_bad_row_names_file_and_line(tmp_path, capsys, line, message):
    src = write_jsonl(tmp_path / "hh.jsonl", [HH_ROWS[0], "", line, HH_ROWS[1]])  # bad row on line 3
    code, out, err = run_cli(capsys, "humans", "import", "--format", "hh", str(src), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith(f"error: {src}:3: ") and message in err and "--skip-invalid" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "data.jsonl").exists()


def test_skip_invalid_counts_and_failed_import_keeps_old_output(tmp_path, capsys):
    out_dir = tmp_path / "out"
    good = write_jsonl(tmp_path / "good.jsonl", HH_ROWS[:2])
    assert import_labels(good, "hh", out_dir).written == 2
    before = (out_dir / "data.jsonl").read_bytes()

    bad = write_jsonl(tmp_path / "bad.jsonl", [HH_ROWS[0], "{", json.dumps({"x": 1}), HH_ROWS[1], HH_ROWS[2]])
    with pytest.raises(CaiError) as info:
        import_labels(bad, "hh", out_dir)
    assert info.value.line == 2
    assert (out_dir / "data.jsonl").read_bytes() == before  # the earlier output is untouched
    assert not (out_dir / ".data.jsonl.tmp").exists()

    code, out, err = run_cli(capsys, "humans", "import", "--format", "hh", str(bad), "--out", str(out_dir),
                             "--skip-invalid")
    assert code == 0, err
    assert "read 5 rows: wrote 2 pairs" in out and "skipped 2 invalid, dropped 1 identical" in out
    assert len(list(read_pairs(out_dir))) == 2

    # Nothing usable at all: an error, and the output folder keeps what it had.
    only_bad = write_jsonl(tmp_path / "only_bad.jsonl", ["{", HH_ROWS[2]])
    with pytest.raises(CaiError, match="no usable pairs"):
        import_labels(only_bad, "hh", out_dir, skip_invalid=True)
    assert len(list(read_pairs(out_dir))) == 2


def test_truncated_gz_is_one_line_error(tmp_path):
    src = write_jsonl(tmp_path / "hh.jsonl.gz", HH_ROWS * 50, gz=True)
    src.write_bytes(src.read_bytes()[:-40])
    with pytest.raises(CaiError) as info:
        import_labels(src, "hh", tmp_path / "out")
    assert str(src) in info.value.format() and "cannot read" in info.value.format()


def test_split_hh_is_pure():
    prompt, chosen, rejected = split_hh(hh("a", "b"), hh("a", "c"))
    assert prompt == [{"role": "user", "content": "a"}]
    assert chosen == [{"role": "assistant", "content": "b"}] and rejected == [{"role": "assistant", "content": "c"}]


U = [{"role": "user", "content": "Name a colour."}]


def test_trl_files_and_folders(tmp_path, capsys):
    from datasets import Dataset, DatasetDict

    rows = [
        {"prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Rock."},  # standard, explicit prompt
        {"chosen": U + [{"role": "assistant", "content": "Blue."}],  # conversational, implicit prompt
         "rejected": U + [{"role": "assistant", "content": "Seven."}]},
        {"prompt": U, "chosen": [{"role": "assistant", "content": "Red."}],
         "rejected": [{"role": "assistant", "content": "Red."}]},  # identical: dropped
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Bye.", "source": "ai-feedback"},  # source forced human
    ]
    src = write_jsonl(tmp_path / "trl.jsonl", rows)
    code, out, err = run_cli(capsys, "humans", "import", "--format", "trl", str(src), "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "read 4 rows: wrote 3 pairs" in out and "dropped 1 identical" in out
    pairs = list(read_pairs(tmp_path / "a"))
    assert [p.chosen_text for p in pairs] == ["Apple.", "Blue.", "Hello!"]
    assert pairs[1].prompt[0].content == "Name a colour." and {p.source for p in pairs} == {"human"}

    # The same data as Parquet, a save_to_disk folder and a saved DatasetDict.
    explicit = [r for r in rows if "prompt" in r and isinstance(r["prompt"], str)]
    ds = Dataset.from_list(explicit)
    ds.to_parquet(str(tmp_path / "trl.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    DatasetDict({"test": ds.select([0]), "train": ds}).save_to_disk(str(tmp_path / "dict"))
    for name, expected in (("trl.parquet", 2), ("saved", 2), ("dict", 2)):
        summary = import_labels(tmp_path / name, "trl", tmp_path / f"out-{name}")
        assert summary.written == expected, name
        assert [p.chosen_text for p in read_pairs(tmp_path / f"out-{name}")] == ["Apple.", "Hello!"]


def test_trl_bad_row(tmp_path):
    src = write_jsonl(tmp_path / "trl.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"},
                                               {"prompt": "a", "chosen": "b"}])
    with pytest.raises(CaiError) as info:
        import_labels(src, "trl", tmp_path / "out")
    assert info.value.line == 2 and "rejected" in info.value.message
    summary = import_labels(src, "trl", tmp_path / "out", skip_invalid=True)
    assert (summary.read, summary.written, summary.invalid) == (2, 1, 1)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_column_mapping(tmp_path, capsys):
    src = write_csv(tmp_path / "labels.csv", ["question", "good", "bad"], [
        ["How are you?", "Fine, thanks.", "Leave me alone."],
        ["Write a haiku", "Old pond\nfrog jumps in\nsplash", "No."],  # a quoted cell over three lines
        ["Same", "x", "x"],
    ])
    code, out, err = run_cli(capsys, "humans", "import", "--format", "csv", str(src), "--out", str(tmp_path / "out"),
                             "--prompt-col", "question", "--chosen-col", "good", "--rejected-col", "bad")
    assert code == 0, err
    assert "read 3 rows: wrote 2 pairs" in out and "dropped 1 identical" in out
    pairs = list(read_pairs(tmp_path / "out"))
    assert pairs[0].prompt[0].content == "How are you?" and pairs[0].chosen_text == "Fine, thanks."
    assert pairs[1].chosen_text == "Old pond\nfrog jumps in\nsplash"
    assert [p.origin for p in pairs] == ["labels.csv:2", "labels.csv:3"]

    code, out, err = run_cli(capsys, "humans", "import", "--format", "csv", str(src), "--out", str(tmp_path / "x"))
    assert code == 2 and ":1: no column(s) prompt, chosen, rejected (columns: question, good, bad)" in err


def test_csv_label_column(tmp_path, capsys):
    src = write_csv(tmp_path / "ab.csv", ["prompt", "response_a", "response_b", "winner"], [
        ["Q1", "A1", "B1", "left"],
        ["Q2", "A2", "B2", "RIGHT"],
        ["Q3", "A3", "B3", "same"],
        ["Q4", "A4", "B4", "equal"],
    ])
    code, out, err = run_cli(
        capsys, "humans", "import", "--format", "csv", str(src), "--out", str(tmp_path / "out"),
        "--chosen-col", "response_a", "--rejected-col", "response_b", "--label-col", "winner",
        "--label-values", "left,right,same|equal")
    assert code == 0, err
    pairs = list(read_pairs(tmp_path / "out"))
    assert [(p.chosen_text, p.rejected_text, p.p_chosen) for p in pairs] == [
        ("A1", "B1", 1.0), ("B2", "A2", 1.0), ("A3", "B3", 0.5), ("A4", "B4", 0.5)]


@pytest.mark.parametrize("row, message", [
    (["Q", "A", "B", "C"], "column 'winner': 'C' is not a label (A, B, tie)"),
    (["", "A", "B", "A"], "column 'prompt' is empty"),
    (["Q", "A"], "row has too few cells"),
])
def test_csv_bad_rows(tmp_path, row, message):
    src = write_csv(tmp_path / "ab.csv", ["prompt", "response_a", "response_b", "winner"],
                    [["Q0", "multi\nline", "B0", "a"], row])
    mapping = CsvMapping(chosen_col="response_a", rejected_col="response_b", label_col="winner")
    with pytest.raises(CaiError) as info:
        import_labels(src, "csv", tmp_path / "out", csv_mapping=mapping)
    assert info.value.line == 4 and message in info.value.message  # row 1 spans lines 2-3
    summary = import_labels(src, "csv", tmp_path / "out", csv_mapping=mapping, skip_invalid=True)
    assert (summary.read, summary.written, summary.invalid) == (2, 1, 1)


def test_usage_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    for args, phrase in (
        (["--format", "hh", str(empty)], "no rows to import"),
        (["--format", "hh", str(tmp_path / "missing.jsonl")], "no such file"),
        (["--format", "xml", str(empty)], "'xml' is not one of 'hh', 'trl', 'csv'"),
        (["--format", "csv", str(empty), "--label-values", "A,B"], "--label-values expects three"),
    ):
        code, _, err = run_cli(capsys, "humans", "import", *args, "--out", str(tmp_path / "out"))
        assert code == 2 and phrase in err, (args, err)


def test_hh_empty_final_turn_is_dropped_and_counted_with_or_without_the_space(tmp_path, capsys):
    rows = [{"chosen": hh("Hi", "Hello!"), "rejected": hh("Hi", "Go away.")},
            {"chosen": "\n\nHuman: Tell me a joke\n\nAssistant:", "rejected": hh("Tell me a joke", "No.")},
            {"chosen": hh("Tell me a secret", "No."), "rejected": "\n\nHuman: Tell me a secret\n\nAssistant: "}]
    src = write_jsonl(tmp_path / "hh.jsonl", rows)
    code, out, err = run_cli(capsys, "humans", "import", "--format", "hh", str(src), "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "read 3 rows: wrote 1 pairs" in out and "2 with an empty response" in " ".join(out.split())
    assert [p.chosen_text for p in read_pairs(tmp_path / "out")] == ["Hello!"]


def test_trl_import_counts_repeated_prompts_and_empty_responses(tmp_path):
    u = [{"role": "user", "content": "Hi"}]
    rows = [{"prompt": u, "chosen": u + [{"role": "assistant", "content": "Hello!"}],
             "rejected": u + [{"role": "assistant", "content": "Go away."}]},
            {"prompt": u, "chosen": "", "rejected": "Go away."}]
    summary = import_labels(write_jsonl(tmp_path / "t.jsonl", rows), "trl", tmp_path / "out")
    assert (summary.read, summary.written, summary.empty_response, summary.prompt_repeated) == (2, 1, 1, 1)
    [pair] = read_pairs(tmp_path / "out")
    assert [m.content for m in pair.prompt] == ["Hi"] and pair.chosen_text == "Hello!"


def test_csv_empty_response_is_dropped_and_counted(tmp_path):
    src = write_csv(tmp_path / "v.csv", ["prompt", "chosen", "rejected"], [["Q1", "A1", "B1"], ["Q2", " ", "B2"]])
    summary = import_labels(src, "csv", tmp_path / "out")
    assert (summary.read, summary.written, summary.invalid, summary.empty_response) == (2, 1, 0, 1)


def test_import_takes_its_settings_from_a_config_file_and_flags_win(tmp_path, capsys):
    """`cai humans import --config`: the file (relative to the config's folder), the format and the
    column map (old spellings too, with a note) come from the YAML; a flag overrides its key."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    write_csv(folder / "labels.csv", ["question", "good", "bad"], [["Q1", "A1", "B1"], ["Q2", "A2", "B2"]])
    cfg = folder / "import.yaml"
    cfg.write_text(f"file: labels.csv\nformat: csv\nout: {tmp_path / 'out'}\nprompt_col: question\n"
                   "chosen_column: good\nrejected_column: bad\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "humans", "import", "--config", str(cfg))
    assert code == 0, err
    assert "read 2 rows: wrote 2 pairs" in out and "prompt_col is now prompt_column" in err
    assert [p.chosen_text for p in read_pairs(tmp_path / "out")] == ["A1", "A2"]
    code, out, err = run_cli(capsys, "humans", "import", "--config", str(cfg), "--chosen-column", "bad",
                             "--rejected-column", "good")
    assert code == 0, err
    assert [p.chosen_text for p in read_pairs(tmp_path / "out")] == ["B1", "B2"]


def test_import_refuses_a_column_setting_its_format_ignores_and_names_a_missing_file(tmp_path, capsys):
    src = write_jsonl(tmp_path / "trl.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    code, _, err = run_cli(capsys, "humans", "import", str(src), "--format", "trl", "--out", str(tmp_path / "o"),
                           "--label-column", "winner")
    assert code == 2 and "label_column is read from a CSV file only (format csv), not trl" in err, err
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli(capsys, "humans", "import", "--format", "trl", "--out", str(tmp_path / "o"))
    assert code == 2 and "missing argument FILE (or file: in --config)" in err, err
