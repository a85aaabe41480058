"""`RUN/report.html`, the loop at a glance, on a run folder made by the real commands on tiny models.

The fixture runs generate, sample, label, route, humans import (+ agreement), mix, reward, ppo and
both evaluations into the layout `cai run` writes, adds the stage manifests, and a second round.
The tests read the numbers back from the stages' own files and look for them in the page and in
``loop_figures``; other tests take stages away or break files; the last renders the page in
headless Chromium (skip logic as in tests/test_evals_report.py).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.core.errors import CaiError
from cai.feedback import AgreementConfig, run_agreement
from cai.loop.report import loop_figures, write_loop_report
from cai.data.pairs import read_pairs
from test_evals_report import browser, open_report, plot_sizes  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.train, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SUITES = "over-refusal,verbosity"
HARMLESS = REPO / "constitution" / "harmless.yaml"


def run(*args: str) -> None:
    assert main([str(a) for a in args]) == 0, args


def manifest(folder: Path, stage: str, seconds: float, summary: dict | None = None) -> None:
    """The stage manifest `cai run` writes next to a stage's output."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stage.json").write_text(json.dumps({"stage": stage, "status": "done", "seconds": seconds,
                                                   "summary": summary or {}}))


def build_run(root: Path, model: Path) -> Path:
    """A round of the loop, stage by stage, with the same commands and folders as `cai run`."""
    run_dir = root / "RUN"
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about topic {i}."}) + "\n" for i in range(4)))
    hf = ["--model", model, "--backend", "transformers", "-O", "device=cpu"]
    # SL-CAI on the scripted backend (it echoes each request): the tiny random model's revisions
    # never end a sentence, so each would fail as truncated and leave no revision pair to mix.
    run("generate", "--constitution", HARMLESS, "--prompts", prompts, "--backend", "scripted", "--model", "echo",
        "--rounds", "1", "--out", run_dir / "generate")
    run("sample", "--prompts", prompts, "--n", "3", "--max-tokens", "8", "--temperature", "1.0",
        "--out", run_dir / "sample", *hf)
    run("label", "--pairs", run_dir / "sample", "--constitution", HARMLESS, "--few-shot", "0",
        "--out", run_dir / "label", *hf)
    run("route", "--pairs", run_dir / "label", "--budget", "3", "--out", run_dir / "route")
    # People label the routed pairs: the AI's pick twice, then the other response.
    ai = {p.id: p for p in read_pairs(run_dir / "label")}
    rows = []
    for k, task in enumerate(read_pairs(run_dir / "route")):
        a = ai[task.id]
        chosen, rejected = (a.chosen, a.rejected) if k < 2 else (a.rejected, a.chosen)
        rows.append({"prompt": [m.model_dump() for m in a.prompt], "chosen": [m.model_dump() for m in chosen],
                     "rejected": [m.model_dump() for m in rejected]})
    (root / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run("humans", "import", root / "people.jsonl", "--format", "trl", "--out", run_dir / "humans" / "pairs")
    run_agreement(AgreementConfig(file=str(run_dir / "humans" / "pairs"), labels=str(run_dir / "label"),
                                  out=str(run_dir / "humans" / "agreement.json")))
    run("mix", "--input", f"ai-revision={run_dir / 'generate' / 'preferences'}", "--input",
        f"ai-feedback={run_dir / 'label'}", "--input", f"human={run_dir / 'humans' / 'pairs'}", "--test-size", "0.3",
        "--out", run_dir / "mix")
    run("train", "reward", "--data", run_dir / "mix", "--model", model, "--out", run_dir / "reward",
        "--max-steps", "2", "--batch-size", "4")
    run("train", "ppo", "--prompts", prompts, "--model", model, "--reward-model", run_dir / "reward",
        "--out", run_dir / "ppo", "--max-steps", "3", "--batch-size", "4", "--mini-batch-size", "2",
        "--max-new-tokens", "8", "--learning-rate", "0.03", "--quiet")  # a policy that answers differently
    behavior(run_dir, run_dir / "ppo" / "policy", model, seed=0)
    run("eval", "reward-model", run_dir / "reward", "--out", run_dir / "eval" / "reward-model", "--suites",
        "verbosity", "--max-length", "256")
    for k, stage in enumerate(["generate", "sample", "label", "route", "humans", "mix", "reward", "ppo",
                               "eval/behavior", "eval/reward-model"]):
        manifest(run_dir / stage, stage, 1.5 + k)
    return run_dir


def behavior(run_dir: Path, policy: Path, start: Path, seed: int) -> None:
    run("eval", "behavior", "--model", policy, "--baseline", start, "--judge-model", start, "--backend",
        "transformers", "-O", "device=cpu", "-O", "on_overflow=truncate", "--suites", SUITES, "--limit", "2",
        "--max-tokens", "4", "--temperature", "1.0", "--seed", seed, "--sampling-seed", seed, "--n-boot", "200",
        "--constitution", REPO / "constitution" / "default.yaml", "--out", run_dir / "eval" / "behavior")


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, tiny_llama) -> Path:
    """Round 1 built by the commands; round 2 reuses its data and training and evaluates the policy
    again with another sampling seed."""
    run_dir = build_run(tmp_path_factory.mktemp("loop"), tiny_llama)
    two = run_dir / "round-2"
    for stage in ("generate", "sample", "label", "mix", "reward", "ppo", "eval/reward-model"):
        shutil.copytree(run_dir / stage, two / stage, ignore=shutil.ignore_patterns("*.safetensors"))
    behavior(two, run_dir / "ppo" / "policy", tiny_llama, seed=1)
    manifest(two / "eval" / "behavior", "eval/behavior", 2.0)
    return run_dir


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


class Tables(HTMLParser):
    """Every ``<table>`` of a page as rows of cell texts, keyed by its id (or its class)."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows = self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(attrs.get("id") or attrs.get("class") or "", [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def leaves(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}/{i}")
    else:
        yield path, value


def est(rate: dict) -> str:
    """A rate as the page prints it: with its interval and n, "too few to estimate" at small n."""
    from cai.core.rates import estimate_text

    return estimate_text(rate)


def mean(values):
    return sum(values) / len(values)


# ---------------------------------------------------------------- the numbers


def test_figures_are_the_stages_numbers(loop_run):
    fig = loop_figures(loop_run)
    assert fig["rounds"] == 2 and [r["round"] for r in fig["by_round"]] == [1, 2]
    one = fig["by_round"][0]
    mix = read_json(loop_run / "mix" / "mix.json")
    assert set(one["pairs"]) == {"ai-revision", "ai-feedback", "human"}
    for source, counts in mix["sources"].items():
        assert one["pairs"][source] == {k: counts[k] for k in ("read", "duplicates", "train", "test")}
    assert one["pairs"]["human"]["read"] == 3 and one["human_pairs"] == 3
    agreement = read_json(loop_run / "humans" / "agreement.json")
    assert one["agreement"]["n"] == 3 and one["agreement"]["accuracy"] == agreement["accuracy"]
    assert one["reward_model_accuracy"] == read_json(loop_run / "reward" / "eval.json")["all"]["accuracy"]
    rows = [json.loads(x) for x in (loop_run / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert one["ppo"]["steps"] == 3
    # 3 steps: start and end are the first and the last step (windows of 5 would overlap)
    assert one["ppo"]["window"] == 1
    assert one["ppo_reward"] == one["ppo"]["reward_end"] == rows[-1]["objective/reward_mean"]
    assert one["ppo_kl"] == rows[-1]["objective/kl"] and one["ppo"]["kl_start"] == rows[0]["objective/kl"]
    for k, folder in enumerate([loop_run, loop_run / "round-2"]):
        results = read_json(folder / "eval" / "behavior" / "summary.json")["results"]
        assert set(fig["by_round"][k]["behavior"]) == {"over-refusal", "verbosity"}
        for r in results:
            b = fig["by_round"][k]["behavior"][r["suite"]]
            assert b == {"before": r["baseline"]["rate"]["value"], "after": r["candidate"]["rate"]["value"],
                         "difference": r["diff"]["value"], "win_rate": r["win_rate"]["value"]}
    assert fig["behavior"] == fig["by_round"][1]["behavior"]  # the top level is the last round
    # the test tells before from after, and round 1 from round 2
    assert any(b["before"] != b["after"] for b in one["behavior"].values())
    assert one["behavior"] != fig["behavior"]
    # every number CI asserts on is there and finite (round 2 has no humans stage)
    for path, value in leaves({k: v for k, v in fig.items() if k != "by_round"}):
        if path.startswith(("/agreement", "/human_pairs", "/dpo_loss")):
            continue
        assert isinstance(value, (int, float)) and math.isfinite(value), (path, value)
    assert fig["human_pairs"] is None and fig["agreement"] is None and fig["dpo_loss"] is None


def test_page_shows_each_section_with_its_numbers(loop_run):
    path = write_loop_report(loop_run)
    assert path == loop_run / "report.html"
    html = path.read_text()
    t = Tables(html).tables
    # stages: one row per manifest, "not run" for the rest, in loop order
    stages = {row[0]: row[1:] for row in t["stages-1"][1:]}
    assert stages["generate"] == ["done", "1.5"] and stages["eval/reward-model"] == ["done", "10.5"]
    assert stages["sft"][0] == "not run" and stages["dpo"][0] == "not run"
    assert list(stages).index("generate") < list(stages).index("mix") < list(stages).index("eval/behavior")
    assert stages["total"] == ["", f"{sum(1.5 + k for k in range(10)):.1f}"]
    # data per source, straight from mix.json
    mix = read_json(loop_run / "mix" / "mix.json")
    sources = {row[0].removesuffix(" (human labels)"): row for row in t["sources-1"][1:]}
    for source, c in mix["sources"].items():
        row = sources[source]
        assert row[1:3] == [str(c["read"]), str(c["duplicates"])] and row[6:8] == [str(c["train"]), str(c["test"])]
    assert sources["all"][6:8] == [str(mix["splits"]["train"]), str(mix["splits"]["test"])]
    gen = read_json(loop_run / "generate" / "summary.json")
    upstream = {row[0]: row[1] for row in t["upstream-1"][1:]}
    assert upstream["generate (SL-CAI)"].startswith(f"{gen['records']} records: {gen['ok']} ok, {gen['revised']} revised")
    assert f"{gen['exports']['preferences']} revision pairs" in upstream["generate (SL-CAI)"]
    sample, label = read_json(loop_run / "sample" / "summary.json"), read_json(loop_run / "label" / "summary.json")
    assert upstream["sample"].startswith(f"{sample['prompts']} prompts, {sample['samples']} samples, {sample['pairs']} pairs")
    assert upstream["label (AI feedback)"].startswith(f"{label['pairs']} pairs labeled")
    assert upstream["route"].startswith("3 of ") and upstream["humans"] == "3 human pairs imported"
    # labeler agreement
    agreement = read_json(loop_run / "humans" / "agreement.json")
    [row] = t["agreement-1"][1:]
    assert row[0] == "3" and row[1].startswith(f"{agreement['accuracy']:.1%} of 3 pairs (95% CI")
    assert row[2] == f"{agreement['ece']:.3f}"
    assert f"{mix['human_vs_ai']['overlap']} AI-labeled pairs also have a human label" in " ".join(html.split())
    # reward model: held-out accuracy overall and per source, the audit's biases with intervals
    ev = read_json(loop_run / "reward" / "eval.json")
    groups = {row[0]: row for row in t["reward-eval-1"][1:]}
    assert groups["all"][1:3] == [str(ev["all"]["n"]), f"{ev['all']['accuracy']:.1%}"]
    assert set(groups) == {"all", *ev["by_source"]}
    audit = read_json(loop_run / "eval" / "reward-model" / "summary.json")
    biases = {row[0]: row for row in t["audit-1"][1:]}
    for b in audit["biases"]:
        assert biases[b["bias"]][2:] == [est(b["prefers_worse"]), est(b["mean_margin"])]
    # PPO start and end
    rows = [json.loads(x) for x in (loop_run / "ppo" / "metrics.jsonl").read_text().splitlines()]
    ppo = {row[0]: row[1:] for row in t["ppo-1"][1:]}
    assert ppo["reward (reward-model score)"] == [f"{rows[0]['objective/reward_mean']:.3f}", f"{rows[-1]['objective/reward_mean']:.3f}"]
    assert ppo["KL to the reference"] == [f"{rows[0]['objective/kl']:.3f}", f"{rows[-1]['objective/kl']:.3f}"]
    # behaviour before and after with intervals, per round, and the table across rounds
    per_round = {row[0]: row[1:] for row in t["per-round"][1:]}
    for k, folder in ((1, loop_run), (2, loop_run / "round-2")):
        results = read_json(folder / "eval" / "behavior" / "summary.json")["results"]
        table = {row[0].split("@")[0]: row for row in t[f"behavior-{k}"][1:]}
        for r in results:
            row = table[r["suite"]]
            assert row[3:] == [est(r["baseline"]["rate"]), est(r["candidate"]["rate"]), est(r["diff"]),
                               r.get("change") or "–", est(r["win_rate"])]
            assert per_round[r["suite"]][k] == est(r["candidate"]["rate"])
            if k == 1:
                assert per_round[r["suite"]][0] == est(r["baseline"]["rate"])
    assert html.count("<svg") == 2 * 7  # per round: sources, audit, PPO, rates, length ratio, difference, win rate
    assert 'href="eval/behavior/report.html"' in html and 'href="round-2/eval/behavior/report.html"' in html
    # round 2 took its data from round 1 and ran no humans stage: said so, with no note of trouble in round 1
    round_two = html[html.index('id="round-2"'):]
    assert "not run: no human labels in this round" in round_two
    # round 1's only note is the weak-labeler warning (the tiny model's answers follow the position)
    notes = re.findall(r'<p class="note">(.*?)</p>', html[:html.index('id="round-2"')], re.S)
    assert notes and all(n.startswith("warning: position consistency") for n in notes), notes


# ---------------------------------------------------------------- missing and broken files


def test_missing_and_broken_files_are_notes(loop_run, tmp_path, tiny_llama):
    run_dir = tmp_path / "RUN"
    shutil.copytree(loop_run, run_dir, ignore=shutil.ignore_patterns("round-2"))
    for stage in ("route", "humans", "eval/reward-model"):
        shutil.rmtree(run_dir / stage)
    (run_dir / "reward" / "eval.json").unlink()
    (run_dir / "reward" / "summary.json").write_text((run_dir / "reward" / "summary.json").read_text()
                                                     .replace('"eval"', '"not_eval"'))
    (run_dir / "label" / "summary.json").write_text('{"pairs": 12, "mean_margin": NaN')  # cut short
    with open(run_dir / "ppo" / "metrics.jsonl", "a") as fh:  # a step with a NaN, and a torn line
        fh.write(json.dumps({"step": 4, "objective/reward_mean": float("nan"), "objective/kl": 1.0}) + "\n{\"step\": 5")
    mix = read_json(run_dir / "mix" / "mix.json")
    mix["sources"]["human"]["read"] = float("inf")
    (run_dir / "mix" / "mix.json").write_text(json.dumps(mix))
    path = write_loop_report(run_dir)
    html = " ".join(path.read_text().split())
    t = Tables(html).tables
    stages = {row[0]: row[1] for row in t["stages-1"][1:]}
    assert stages["route"] == stages["humans"] == "not run" and stages["eval/behavior"] == "done"
    notes = [n for n in html.split('<p class="note">')[1:]]
    assert any(n.startswith("could not read label/summary.json: invalid JSON") for n in notes)
    assert any(n.startswith("missing eval/reward-model/summary.json: its stage has not run") for n in notes)
    assert any(n.startswith("ppo/metrics.jsonl: left out 1 unreadable line(s)") for n in notes)
    assert "not run: no human labels in this round" in html and "No held-out evaluation" in html
    assert {row[0].removesuffix(" (human labels)"): row[1] for row in t["sources-1"][1:]}["human"] == "n/a"
    fig = loop_figures(run_dir)
    assert fig["labeled_pairs"] is None and fig["reward_model_accuracy"] is None
    assert fig["pairs"]["human"]["read"] is None and fig["ppo"]["steps"] == 4
    rows = [json.loads(x) for x in (loop_run / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert fig["ppo_reward"] == rows[-1]["objective/reward_mean"]  # step 4's NaN left out
    assert fig["ppo_kl"] == pytest.approx(mean([rows[-1]["objective/kl"], 1.0]))  # 4 values: the last 2
    cells = [c for rows in t.values() for row in rows for c in row]
    assert not [c for c in cells if re.search(r"\b(nan|inf)\b", c, re.IGNORECASE)]

    # DPO instead of PPO: its summary replaces the curves
    shutil.rmtree(run_dir / "ppo")
    run("train", "dpo", "--data", run_dir / "mix", "--model", tiny_llama, "--out", run_dir / "dpo",
        "--max-steps", "1", "--batch-size", "2")
    dpo = read_json(run_dir / "dpo" / "summary.json")
    t = Tables(write_loop_report(run_dir, tmp_path / "elsewhere" / "loop.html").read_text()).tables
    rows = {row[0]: row[1] for row in t["dpo-1"][1:]}
    assert rows["steps"] == str(dpo["steps"]) and rows["final loss"] == f"{dpo['final_loss']:.3f}"
    assert loop_figures(run_dir)["dpo_loss"] == dpo["final_loss"] and loop_figures(run_dir)["ppo"] is None


def test_nearly_empty_run_folder(tmp_path):
    """Nothing but a folder: every stage "not run" or missing, and no error."""
    html = write_loop_report(tmp_path).read_text()
    assert "missing generate/summary.json" in html and "missing ppo/ (or dpo/)" in html
    assert "no evaluation: eval/behavior/summary.json is missing" in html
    assert Tables(html).tables["stages-1"][-1] == ["total", "", "n/a"]
    fig = loop_figures(tmp_path)
    assert fig["pairs"] == {} and fig["behavior"] == {} and fig["reward_model_accuracy"] is None
    with pytest.raises(CaiError, match="no such run folder"):
        write_loop_report(tmp_path / "nope")


# ---------------------------------------------------------------- in a browser


@pytest.mark.browser
def test_loop_report_renders(browser, loop_run, tmp_path):  # noqa: F811
    path = write_loop_report(loop_run, tmp_path / "report.html")
    page, errors, requests = open_report(browser, path)
    assert errors == [] and requests == []
    sizes = plot_sizes(page)
    assert len(sizes) == 14 and all(w > 100 and h > 100 for w, h in sizes)
    ids = page.eval_on_selector_all("[id]", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))  # glyph and clip ids of every plot are unique in the page
    assert page.locator("#per-round tr").count() == 3  # header + 2 suites
    glance = page.inner_text("dl.glance")
    assert "ai-feedback" in glance and "human 3" in glance and "PPO, 3 steps" in glance
    assert page.locator("a[href$='eval/behavior/report.html']").count() == 2
