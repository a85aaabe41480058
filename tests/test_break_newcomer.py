"""Faults a newcomer hit with inputs of their own (after issues 22 and 23), each on a small input."""

from __future__ import annotations

import json
import time

import pytest

from cai.core.errors import CaiError

# ---------------------------------------------------------------- a constitution's template in one call

VARS = {"request": "Identify harms.", "principle": "p", "conversation": "c", "response": "r"}


@pytest.mark.parametrize("source", [
    "{{ request.ljust(300000000)|length }}",              # one method call, freed before the next line
    "{{ request|center(300000000)|length }}",             # a filter
    "{{ ('%300000000s'|format(request))|length }}",       # a width in a format string
    "{{ ('%300000000s' % request)|length }}",
    "{{ '{:>300000000}'.format(request)|length }}",
    "{{ '{:>{w}}'.format(request, w=300000000)|length }}",
    "{{ ((request * 5000)|replace('', request * 6000))|length }}",
    "{{ (range(100000)|join(request * 6000))|length }}",
])
def test_a_single_call_cannot_build_a_huge_value(source):
    """The clock and memory checks run between template lines; one call that allocates 300 MB and
    is measured with |length slipped between them and rendered a number."""
    from cai.principles.templates import render

    with pytest.raises(CaiError, match="unsafe operation"):
        render("critique", source, **VARS)


def test_ordinary_filters_on_a_long_conversation_still_render():
    """The bounds refuse what would be huge, not a long input with a short argument."""
    from cai.principles.templates import render

    long = "User: hi\n" * 40_000  # 360k characters
    assert len(render("critique", "{{ conversation|truncate(200, True, '...') }}", **{**VARS, "conversation": long})) < 300
    out = render("critique", "{{ conversation|replace('\\n', '\\n> ') }}", **{**VARS, "conversation": long})
    assert out.count("> ") == 39_999
    assert render("critique", "{{ request|center(30)|indent(2) }}", **VARS).strip() == "Identify harms."


def test_lipsum_cannot_run_past_the_clock():
    """lipsum(n=300, max=1001) ran ~2-3 s inside one call (n=3000: 20 s, past the 2 s bound)."""
    from cai.principles.templates import render, trial_render

    start = time.monotonic()
    with pytest.raises(CaiError, match="lipsum"):
        render("critique", "{{ lipsum(n=300, min=1000, max=1001)|length }}", **VARS)
    assert time.monotonic() - start < 1.0
    assert render("critique", "{{ lipsum(2, html=False, min=5, max=10) }}", **VARS)  # small ones still work
    assert trial_render("critique", "{{ request }}") is None


# ---------------------------------------------------------------- PPO: a prompt longer than the policy's context


def test_ppo_prompt_and_response_fit_the_policy_context(tmp_path, monkeypatch):
    """A 300-token prompt and a policy with a 96-token context: the rollout kept 300 prompt tokens
    (max_prompt_length 512) and generated past the context, silently (generate and sample reject
    the same prompt)."""
    pytest.importorskip("accelerate")
    from cai.testing import build_tiny_llama
    from cai.testing.ppo import build_tiny_reward_model
    from cai.train.ppo import PPOConfig, PPOTrainer
    from cai.train.ppo import trainer as trainer_module

    policy = build_tiny_llama(tmp_path / "policy", max_position_embeddings=96)
    reward = build_tiny_reward_model(tmp_path / "rm", policy, steps=1)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "tell me more about this " * 60}) + "\n")
    cfg = PPOConfig.model_validate({"model": str(policy), "reward_model": str(reward), "prompts": str(prompts),
                                    "out": str(tmp_path / "out"), "batch_size": 1, "mini_batch_size": 1,
                                    "max_new_tokens": 8, "max_steps": 1, "quiet": True})
    seen = []
    real = trainer_module.generate

    def spy(policy_model, query, *args, **kwargs):
        seen.append(query.shape[1])
        return real(policy_model, query, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "generate", spy)
    trainer = PPOTrainer(cfg)
    trainer.step(0)
    assert seen and seen[0] + cfg.max_new_tokens <= 96, seen


# ---------------------------------------------------------------- a spreadsheet with ratings

SCORED_CSV = ("\ufeffprompt,chosen,rejected,score_chosen,score_rejected\r\n"
              "Hi there,Hello!,Go away.,5,1\r\n"
              "Tell a joke,Knock knock.,No.,3,3\r\n")


def _rows(folder):
    return [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]


def test_csv_import_reads_rating_columns_and_ties(tmp_path):
    """An Excel sheet with UltraFeedback-style rating columns: `humans import --format csv` wrote
    the 3-3 row as a confident preference (p_chosen 1.0) and dropped the ratings without a word,
    while the same rows as JSONL were a tie (issue 22, item 4)."""
    from cai.humans.importers import import_labels

    src = tmp_path / "scored.csv"
    src.write_bytes(SCORED_CSV.encode())
    summary = import_labels(src, "csv", tmp_path / "half")
    rows = _rows(tmp_path / "half")
    assert [r["p_chosen"] for r in rows] == [1.0, 0.5]
    assert [(r["score_chosen"], r["score_rejected"]) for r in rows] == [(5.0, 1.0), (3.0, 3.0)]
    assert summary.score_ties == 1 and "score_chosen, score_rejected" in summary.line()
    dropped = import_labels(src, "csv", tmp_path / "drop", ties="drop")
    assert dropped.written == 1 and dropped.ties_dropped == 1 and "dropped 1 ties" in dropped.line()


def test_csv_ratings_follow_a_label_column_and_read_as_pairs(tmp_path):
    """With a label column saying B, the ratings swap with the responses; `read_pairs` (cai mix,
    cai train reward) reads the same CSV cells as numbers instead of refusing '5' as not a number."""
    from cai.data.pairs import read_pairs
    from cai.humans.importers import CsvMapping, import_labels

    src = tmp_path / "ab.csv"
    src.write_text("q,a,b,better,score_chosen,score_rejected\nHi,Go away.,Hello!,B,1,5\n")
    import_labels(src, "csv", tmp_path / "out", csv_mapping=CsvMapping(
        prompt_column="q", chosen_column="a", rejected_column="b", label_column="better"))
    (row,) = _rows(tmp_path / "out")
    assert row["chosen"][0]["content"] == "Hello!" and (row["score_chosen"], row["score_rejected"]) == (5.0, 1.0)
    plain = tmp_path / "plain.csv"
    plain.write_bytes(SCORED_CSV.encode())
    pairs = list(read_pairs(plain))
    assert [p.p_chosen for p in pairs] == [1.0, 0.5] and pairs[1].score_chosen == 3.0


# ---------------------------------------------------------------- cai score: a text longer than the reward model's context


def test_cai_score_reads_no_further_than_the_reward_models_context(tmp_path):
    """Without --max-length, `cai score` fed a 600-token text to a reward model with a 96-token
    context (a reward read past max_position_embeddings, with only transformers' warning), while PPO's
    scorer cut the same text to the context: two rewards for one text."""
    pytest.importorskip("accelerate")
    from cai.testing import build_tiny_llama
    from cai.testing.ppo import build_tiny_reward_model
    from cai.train.score import score_file

    policy = build_tiny_llama(tmp_path / "policy", max_position_embeddings=96)
    reward = build_tiny_reward_model(tmp_path / "rm", policy, steps=1)
    rows = tmp_path / "responses.jsonl"
    rows.write_text(json.dumps({"prompt": "tell me more " * 200, "response": "a short answer"}) + "\n")
    default = score_file(str(reward), str(rows), out=str(tmp_path / "a.jsonl"))
    explicit = score_file(str(reward), str(rows), out=str(tmp_path / "b.jsonl"), max_length=96)
    assert default["truncated"] == 1 and default["max_length"] == 96
    reward_of = [json.loads((tmp_path / name).read_text())["reward"] for name in ("a.jsonl", "b.jsonl")]
    assert reward_of[0] == pytest.approx(reward_of[1])


# ---------------------------------------------------------------- prompts from a spreadsheet


def _prompts(path, **kw):
    from cai.data.prompts import PromptReader

    reader = PromptReader(path, column="question", **kw)
    return reader, [(row.source.rsplit(":", 1)[1], row.messages[-1]["content"]) for row in reader]


def test_a_semicolon_csv_reads_as_excel_wrote_it(tmp_path):
    """Excel in many locales saves 'CSV' with ';': the error said the column was missing and told
    the user to pass --prompt-column, which names the column they already gave."""
    src = tmp_path / "semi.csv"
    src.write_bytes("\ufeffquestion;topic\r\nHow does Inception end?;film\r\nIs it, really?;x\r\n".encode())
    _, rows = _prompts(src)
    assert rows == [("2", "How does Inception end?"), ("3", "Is it, really?")]


def test_a_blank_prompt_row_fails_alone_named_by_its_first_line(tmp_path, caplog):
    """One blank cell stopped generate/sample/the loop before any work (`blank.csv:3: row has no
    text`); the other rows are fine. And a quoted cell over two lines was named by its last line."""
    src = tmp_path / "blank.csv"
    src.write_bytes("\ufeffquestion,topic\r\nFirst?,a\r\n   ,blank\r\n\"multi\r\nline\",x\r\nlast,y\r\n".encode())
    reader, rows = _prompts(src)
    assert rows == [("2", "First?"), ("4", "multi\r\nline"), ("6", "last")]
    assert reader.skipped == [f"{src}:3"] and "blank.csv:3: row left out" in caplog.text
    caplog.clear()
    again, _ = _prompts(src)  # the loop reads its prompts several times: the row is named once
    assert again.skipped == [f"{src}:3"] and "row left out" not in caplog.text
    from cai.data.prompts import PromptReader

    with pytest.raises(CaiError, match="no text in column"):  # a wrong column still stops at once
        list(PromptReader(src, column="prompt"))


def test_a_missing_rater_column_names_the_option_that_sets_it(tmp_path):
    """`--rater-column rater` on a sheet whose column is 'Rater': the hint named --prompt-column,
    --chosen-column, --rejected-column and --label-column, all correct, and not --rater-column."""
    from cai.humans.importers import CsvMapping, import_labels

    src = tmp_path / "r.csv"
    src.write_text("Question,A,B,Winner,Rater\nHi,Hello!,Go away.,A,ana\n")
    mapping = CsvMapping.from_values("A,B,tie", prompt_column="Question", chosen_column="A", rejected_column="B",
                                     label_column="Winner", rater_column="rater")
    with pytest.raises(CaiError) as err:
        import_labels(src, "csv", tmp_path / "out", csv_mapping=mapping)
    assert err.value.format().endswith("no column(s) rater (columns: Question, A, B, Winner, Rater); "
                                       "pass --rater-column (did you mean 'Rater'?)")


# ---------------------------------------------------------------- a misspelt field in a recipe or a config


def test_a_misspelt_field_is_named_with_the_field_meant(tmp_path):
    """`promts: x.csv` in a recipe said 'prompts: Input should be a valid string' (the lookup rule put
    prompts: None in), never naming the misspelt key; `roundz:` in a block said only 'Extra inputs are
    not permitted'."""
    from cai.cli.common import validate_config
    from cai.loop.recipe import load_recipe, validate_block
    from cai.sl.config import GenerateConfig

    recipe = tmp_path / "r.yaml"
    recipe.write_text("out: runs/r\npromts: x.csv\nmodels: {policy: m}\n")
    with pytest.raises(CaiError, match=r"promts: unknown field \(did you mean 'prompts'\?\)"):
        load_recipe(recipe)
    recipe.write_text("out: runs/r\nmodels: {policy: m}\n")
    with pytest.raises(CaiError, match="prompts: Field required"):
        load_recipe(recipe)
    with pytest.raises(CaiError, match=r"generate.sampling.max_tokenz: unknown field \(did you mean 'max_tokens'\?\)"):
        validate_block(GenerateConfig, {"prompts": "x.csv", "sampling": {"max_tokenz": 8}}, "generate", "r.yaml")
    with pytest.raises(CaiError, match=r"roundz: unknown field \(did you mean 'rounds'\?\)"):
        validate_config(GenerateConfig, {"prompts": "x.csv", "roundz": 2}, "gen.yaml")


# ---------------------------------------------------------------- bad YAML


@pytest.mark.parametrize("text, line, hint", [
    ("name: tab\nversion: 1.0.0\nprinciples:\n\tids: [x]\n", 4, "indent with spaces, not tabs"),
    ("name: c\nversion: 1.0.0\ndescription: Harms: an overview\n", 3, "quote a value that holds ': '"),
    ("name: b\nversion: 1.0.0\nprinciples:\n  ids: [p1\n", 5, "a '[' is not closed"),
])
def test_malformed_yaml_says_the_usual_cause(tmp_path, text, line, hint):
    """PyYAML's 'found character '\\t' that cannot start any token' and 'mapping values are not
    allowed here' were shown bare; a newcomer's constitution usually has a tab, an unquoted ': ' or
    an unclosed '['."""
    from cai.principles.lint import lint_paths

    (tmp_path / "constitution").mkdir()
    (tmp_path / "constitution" / "c.yaml").write_text(text)
    (problem,) = [d for d in lint_paths([tmp_path / "constitution"]).diagnostics if d.severity == "error"]
    assert problem.line == line and "malformed YAML" in problem.message and hint in problem.message


def test_generate_counts_the_blank_row_it_left_out(tmp_path):
    """The left-out row is in summary.json (and the printed summary), not only on stderr."""
    from pathlib import Path

    from sl_helpers import EchoCritic

    from cai.sl import GenerateConfig, run_generate

    src = tmp_path / "p.csv"
    src.write_text("prompt\nFirst?\n\"\"\nLast?\n")
    cfg = GenerateConfig.model_validate({
        "constitution": str(Path(__file__).resolve().parents[1] / "constitution" / "harmless.yaml"),
        "prompts": str(src), "out": str(tmp_path / "run"), "policy": {"backend": "transformers", "model": "echo"}})
    backend = EchoCritic()
    summary = run_generate(cfg, backends=(backend, backend))
    assert summary["records"] == 2 and summary["left_out"]["first"] == [f"{src}:3"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["left_out"]["rows"] == 1


def test_a_template_that_no_prompt_can_render_fails_at_load(tmp_path):
    """`critique: "{{ request.ljust(10**9) }}"` passed lint and loaded; `cai generate` drafted every
    prompt with the model and then stopped at the first critique. The sandbox refuses it whatever
    the values, so lint and the constitution loader say so at the template's line."""
    from cai.principles.constitution import load_constitution
    from cai.principles.lint import lint_paths

    (tmp_path / "principles").mkdir()
    (tmp_path / "constitution").mkdir()
    (tmp_path / "principles" / "kind.md").write_text(
        "---\nid: kind\nversion: 1.0.0\ntitle: Kind\ntags: [manners]\n---\n"
        "## Critique\nIs it unkind?\n\n## Revision\nMake it kind.\n\n## Preference\nWhich is kinder?\n")
    path = tmp_path / "constitution" / "evil.yaml"
    path.write_text('name: evil\nversion: 1.0.0\nprinciples: {ids: [kind]}\ntemplates:\n'
                    '  critique: "{{ request.ljust(1000000000) }}"\n')
    with pytest.raises(CaiError, match=r"evil\.yaml:5: templates\.critique: .*unsafe operation"):
        load_constitution(path)
    report = lint_paths([tmp_path / "principles", tmp_path / "constitution"])
    assert [d.line for d in report.diagnostics if d.severity == "error"] == [5]


# ---------------------------------------------------------------- agreement with a human tie


def test_a_human_tie_is_not_scored_as_a_human_pick():
    """A spreadsheet row marked 'same' (p_chosen 0.5) counted in `cai eval agreement` (and the
    loop's humans/agreement.json) as if its first response were the human's pick: the AI was 'right'
    for preferring it, 'wrong' otherwise."""
    from cai.data.pairs import pair_from_row
    from cai.feedback.agreement import pairwise_report

    pick = pair_from_row({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away.", "p_chosen": 1.0}, source="human")
    tie = pair_from_row({"prompt": "Cook?", "chosen": "Cook daily.", "rejected": "Buy a book.", "p_chosen": 0.5},
                        source="human")
    ai = {p.id: p.model_copy(update={"p_chosen": 0.9, "source": "ai-feedback"}) for p in (pick, tie)}
    report = pairwise_report([pick, tie], ai)
    assert report["n"] == 1 and report["human_ties"] == 1 and report["accuracy"] == 1.0
    ai[pick.id] = ai[pick.id].model_copy(update={"p_chosen": 0.2})
    assert pairwise_report([pick, tie], ai)["accuracy"] == 0.0  # was 0.5: the tie counted as agreement


def test_principle_tests_leave_human_ties_out(tmp_path):
    """`cai principles test --pairs` measured a principle against a tie as if the first response
    were the human's pick."""
    from cai.inverse.tester import read_labeled

    src = tmp_path / "h.jsonl"
    src.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}) + "\n"
                   + json.dumps({"prompt": "Cook?", "chosen": "Cook daily.", "rejected": "Buy a book.",
                                 "score_chosen": 3, "score_rejected": 3}) + "\n")
    pairs, counts = read_labeled(str(src), limit=None, skip_invalid=False)
    assert [p.prompt[-1].content for p in pairs] == ["Hi"] and counts["human_tie"] == 1
