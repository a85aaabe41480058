"""SL-CAI: stage batching, records, provenance, resume, exports, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.sl import GenerateConfig, run_generate
from cai.data.store import RecordStore, iter_records
from sl_helpers import EchoCritic

REPO = Path(__file__).resolve().parents[1]


def write_prompts(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"Question number {i}: how should I treat my neighbour?"}) + "\n")
    return path


def config(tmp_path, prompts, **kw) -> GenerateConfig:
    data = dict(constitution=str(REPO / "constitution" / "harmless.yaml"), prompts=str(prompts),
                out=str(tmp_path / "run"), policy={"backend": "transformers", "model": "echo"})
    data.update(kw)
    return GenerateConfig.model_validate(data)


def test_stage_batching_records_and_provenance(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 7)
    backend = EchoCritic()
    summary = run_generate(config(tmp_path, prompts, chunk_size=100, flush_seconds=None), backends=(backend, backend))
    # harmless.yaml has 2 rounds: 1 draft call + 2 x (critique call + revision call), each batching all 7
    assert backend.calls == [("draft", 7), ("critique", 7), ("revision", 7), ("critique", 7), ("revision", 7)]
    assert summary["records"] == 7 and summary["ok"] == 7 and summary["revised"] == 7
    records = list(iter_records(tmp_path / "run"))
    r = records[0]
    assert r.draft.startswith("Draft answer to:")
    assert len(r.steps) == 2 and all("@1.0.0" in s.principle for s in r.steps)
    assert [s.round for s in r.steps] == [0, 1]
    assert r.final.startswith("A kinder answer")  # the lead-in was stripped
    assert r.steps[1].revision_raw.startswith("Sure, here is")
    p = r.provenance
    assert p.constitution == "harmless@1.0.0" and len(p.constitution_hash) == 64
    assert p.policy_model == "echo" and p.sampling["max_tokens"] == 256 and p.cai_version
    # the principle picks are reproducible: a second run picks the same principles
    summary2 = run_generate(config(tmp_path, prompts, out=str(tmp_path / "run2")), backends=(backend, backend))
    again = {x.id: x.principles for x in iter_records(tmp_path / "run2")}
    assert again == {x.id: x.principles for x in records} and summary2["records"] == 7


def test_skip_ok_and_critic_model(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    policy, critic = EchoCritic(), EchoCritic(verdict="ok")
    cfg = config(tmp_path, prompts, skip_ok=True, critic={"backend": "transformers", "model": "critic-m"},
                 flush_seconds=None)  # fixed chunks: one call per stage
    summary = run_generate(cfg, backends=(policy, critic))
    assert [c for c, _ in critic.calls] == ["critique", "critique"]
    assert [c for c, _ in policy.calls] == ["draft"]  # every revision skipped
    r = next(iter(iter_records(tmp_path / "run")))
    assert all(s.skipped and s.verdict == "ok" for s in r.steps)
    assert r.final == r.draft and r.provenance.critic_model == "critic-m"
    assert summary["exports"]["preferences"] == 0 and summary["exports"]["sft"] == 3


def test_failures_are_kept_and_counted(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    backend = EchoCritic(revision_prefix="Sure, here is a revised response:")
    backend._answer_orig = backend._answer
    backend._answer = lambda conv: (("revision", "Sure, here is a revised response:")
                                    if "rewritten response only" in conv[-1]["content"] else backend._answer_orig(conv))
    summary = run_generate(config(tmp_path, prompts), backends=(backend, backend))
    assert summary["failed"] == 2 and summary["failures"] == {"only-preamble-revision": 2}
    r = next(iter(iter_records(tmp_path / "run")))
    assert r.status == "failed" and r.failure.raw == "Sure, here is a revised response:" and r.final is None


def test_exports_are_trl_conversational(tmp_path):
    from datasets import load_from_disk

    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    backend = EchoCritic()
    run_generate(config(tmp_path, prompts), backends=(backend, backend))
    prefs = load_from_disk(str(tmp_path / "run" / "preferences" / "hf"))
    assert len(prefs) == 4
    row = prefs[0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["chosen"][0]["content"].startswith("A kinder") and row["rejected"][0]["content"].startswith("Draft")
    assert row["source"] == "ai-revision" and row["p_chosen"] == 1.0 and len(row["principle_ids"]) == 2
    sft = load_from_disk(str(tmp_path / "run" / "sft" / "hf"))
    assert sft[0]["messages"][-1]["content"].startswith("A kinder")
    assert (tmp_path / "run" / "preferences" / "data.parquet").exists()
    assert len((tmp_path / "run" / "sft" / "data.jsonl").read_text().splitlines()) == 4


def test_resume_skips_finished_records(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    backend = EchoCritic()
    run_generate(config(tmp_path, prompts, limit=4, chunk_size=2), backends=(backend, backend))
    backend.calls.clear()
    summary = run_generate(config(tmp_path, prompts, chunk_size=2, flush_seconds=None), backends=(backend, backend))
    assert summary["resumed_from"] == 4 and summary["records"] == 6
    assert backend.calls[0] == ("draft", 2)  # only the two new prompts were drafted
    ids = [r.id for r in iter_records(tmp_path / "run")]
    assert len(ids) == len(set(ids)) == 6


def test_resume_refuses_a_different_run(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    backend = EchoCritic()
    run_generate(config(tmp_path, prompts), backends=(backend, backend))
    with pytest.raises(CaiError, match="different constitution_hash"):
        run_generate(config(tmp_path, prompts, constitution=str(REPO / "constitution" / "default.yaml")),
                     backends=(backend, backend))


def test_torn_line_is_repaired(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    backend = EchoCritic()
    run_generate(config(tmp_path, prompts, export=False), backends=(backend, backend))
    path = tmp_path / "run" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:40])  # killed in the middle of a write
    store = RecordStore(tmp_path / "run")
    assert len(store.done) == 2 and store.repaired_bytes == 40
    summary = run_generate(config(tmp_path, prompts), backends=(backend, backend))
    assert summary["records"] == 3 and summary["resumed_from"] == 2


@pytest.mark.parametrize("content,fmt,message", [
    ("", "jsonl", "no prompts"),
    ('{"prompt": "ok"}\n{"prompt": \n', "jsonl", "p.jsonl:2: malformed JSON"),
    ('{"text": "x"}\n', "jsonl", "p.jsonl:1: row has no text in column 'prompt'"),
    ("prompt\n\"\"\n", "csv", "no prompts"),  # a blank row beside good ones fails alone (test_break_newcomer)
])
def test_bad_prompt_files(tmp_path, content, fmt, message):
    prompts = tmp_path / f"p.{fmt}"
    prompts.write_text(content)
    backend = EchoCritic()
    with pytest.raises(CaiError) as err:
        run_generate(config(tmp_path, prompts), backends=(backend, backend))
    assert message in err.value.format()
    assert backend.calls == []  # validated before any model call
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_prompt_formats(tmp_path):
    from datasets import Dataset

    from cai.data.prompts import PromptReader

    hh = tmp_path / "hh.jsonl"
    hh.write_text(json.dumps({"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke"
                                        "\n\nAssistant: No."}) + "\n")
    [row] = PromptReader(hh, "hh")
    assert row.messages == [{"role": "user", "content": "Hi there"}]
    [row] = PromptReader(hh, "hh", hh_turns="all")
    assert [m["role"] for m in row.messages] == ["user", "assistant", "user"]
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("id,question\nq1,What is 2+2?\nq2,Name a colour\n")
    rows = list(PromptReader(csv_path, column="question", id_column="id"))
    assert [r.id for r in rows] == ["q1", "q2"] and rows[1].source.endswith("p.csv:3")
    Dataset.from_list([{"prompt": "a"}, {"prompt": "a"}]).save_to_disk(str(tmp_path / "ds"))
    rows = list(PromptReader(tmp_path / "ds"))
    assert rows[0].id != rows[1].id and rows[1].id.endswith("-1")  # repeated prompts stay distinct


def test_cli_errors_are_one_line(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    cases = [
        (["--constitution", "nope.yaml", "--prompts", str(prompts), "--model", "m", "--out", str(tmp_path / "o")],
         "constitution not found"),
        (["--constitution", "harmless", "--prompts", str(tmp_path / "missing.jsonl"), "--model", "m", "--out", "o"],
         "prompts not found"),
        (["--constitution", "harmless", "--prompts", str(prompts), "--model", "m", "--backend", "nope",
          "--out", "o"], "unknown backend 'nope'"),
        (["--constitution", "harmless", "--prompts", str(prompts), "--model", str(tmp_path / "m.gguf"),
          "--out", str(tmp_path / "o2")], "GGUF model file"),
        (["--constitution", "harmless", "--prompts", str(prompts), "--model", "m"], "out: Field required"),
    ]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "generate", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path, tiny_llama):
    """Kill a real `cai generate` at a random moment; the rerun completes every prompt exactly once."""
    prompts = write_prompts(tmp_path / "p.jsonl", 24)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cai.cli.main", "generate", "--constitution", "harmless", "--prompts", str(prompts),
           "--model", str(tiny_llama), "--backend", "transformers", "--out", str(out), "--max-tokens", "8",
           "--chunk-size", "3", "-O", "on_overflow=truncate", "--rounds", "1"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if records.exists() and records.stat().st_size > 0 and proc.poll() is None:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(RecordStore(out).done)
    assert 0 < done_before < 24
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ids = [r.id for r in iter_records(out)]
    assert len(ids) == 24 and len(set(ids)) == 24
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == done_before and summary["records"] == 24


def test_cli_config_file_with_flag_overrides(tmp_path):
    """`cai generate --config` reads the YAML recipe; flags win over it (scripted backend: no model)."""
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(
        f"constitution: {REPO / 'constitution' / 'helpful-honest.yaml'}\n"
        f"prompts: {prompts}\nout: {tmp_path / 'run'}\nlimit: 3\n"
        "policy: {backend: scripted, model: scripted}\n"
        "sampling: {temperature: 0.0, max_tokens: 64, seed: 7}\n"
    )
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "generate", "--config", str(cfg), "--limit", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "records 2 (ok 2" in proc.stdout
    records = list(iter_records(tmp_path / "run"))
    assert len(records) == 2
    assert records[0].provenance.sampling["seed"] == 7 and records[0].provenance.backend == "scripted"
    show = subprocess.run([sys.executable, "-m", "cai.cli.main", "show", str(tmp_path / "run"), "--id", records[1].id[:8]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert show.returncode == 0 and records[1].id in show.stdout and "critique request" in show.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("constitution: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "generate", "--config", str(bad)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bad.yaml:" in proc.stderr and "Traceback" not in proc.stderr


class ThinkingCritic(EchoCritic):
    """A reasoning model: every output opens with a <think> block; drafts of prompts naming
    'ramble' spend the whole budget inside it."""

    def generate(self, conversations, sampling=None):
        from cai.backends.base import Completion

        out = []
        for conv in conversations:
            stage, text = self._answer(conv)
            if stage == "draft" and "ramble" in conv[-1]["content"]:
                out.append([Completion(text="<think>Where do I even start", prompt_tokens=10,
                                       completion_tokens=5, finish_reason="length")])
                continue
            out.append([Completion(text=f"<think>Thinking about the {stage}.</think>\n\n{text}", prompt_tokens=10,
                                   completion_tokens=5, finish_reason="stop")])
        return out


def test_reasoning_blocks_are_kept_out_of_records_and_exports(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    with open(prompts, "a") as fh:
        fh.write(json.dumps({"prompt": "Please ramble."}) + "\n")
    backend = ThinkingCritic()
    summary = run_generate(config(tmp_path, prompts), backends=(backend, backend))
    assert summary["ok"] == 2 and summary["failures"] == {"truncated-draft": 1}
    records = {r.prompt[-1].content: r for r in iter_records(tmp_path / "run")}
    r = records["Question number 0: how should I treat my neighbour?"]
    assert r.draft.startswith("Draft answer") and r.draft_raw.startswith("<think>Thinking about the draft.")
    step = r.steps[0]
    assert step.critique == "The response could be kinder." and step.critique_raw.startswith("<think>")
    assert step.revision.startswith("A kinder") and step.revision_raw.startswith("<think>")
    assert records["Please ramble."].failure.kind == "truncated-draft"
    exported = (tmp_path / "run" / "sft" / "data.jsonl").read_text() + (
        tmp_path / "run" / "preferences" / "data.jsonl").read_text()
    assert "<think>" not in exported and "Thinking about" not in exported
