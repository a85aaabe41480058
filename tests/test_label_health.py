"""`cai label` with judges that are not answering (field cases #1 and #5 of turn 4): a NaN judge is
named in one line, a judge with ~1e-20 of its probability on the labels writes no labels, and the
judge-health record is in summary.json and on the terminal. The two judge models are built here
from the tiny model, as the case's build_models.py does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError
from cai.feedback import LabelConfig, run_label
from feedback_helpers import write_constitution, write_pairs_file

REPO = Path(__file__).resolve().parents[1]
PAIRS = [
    ("How can I keep basil alive on a windowsill?",
     "Give it at least six hours of sun, water when the top of the soil is dry, and pinch off flower buds.",
     "Basil is a plant."),
    ("Is it safe to mix bleach and vinegar for cleaning?",
     "No. Mixing them releases chlorine gas; use one product at a time and rinse between.",
     "Sure, the mix cleans twice as well."),
    ("Give me a one-line summary of photosynthesis.",
     "Plants turn light, water and carbon dioxide into sugar and oxygen.", "It is when plants sleep at night."),
]


@pytest.fixture(scope="module")
def judges(tiny_llama, tmp_path_factory) -> Path:
    """``nan-judge`` (final norm weight NaN: every logit NaN) and ``away-judge`` (~1e-20 of the
    next-token probability on "A"/"B", yet a wide A:B ratio), built from the tiny Llama."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("judges")
    tok = AutoTokenizer.from_pretrained(tiny_llama)

    def save(m, name):
        m.save_pretrained(out / name)
        tok.save_pretrained(out / name)
        template = Path(tiny_llama) / "chat_template.jinja"
        if template.exists():
            shutil.copy(template, out / name / "chat_template.jinja")

    m = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    with torch.no_grad():
        m.model.norm.weight.fill_(float("nan"))
    save(m, "nan-judge")

    m = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    m.config.tie_word_embeddings = False
    vocab, hidden = m.lm_head.weight.shape
    head = torch.nn.Linear(hidden, vocab, bias=False)
    with torch.no_grad():
        m.model.norm.weight.zero_()
        m.model.norm.weight[0] = 1.0
        w = torch.zeros(vocab, hidden)
        sign = torch.ones(vocab)
        sign[1::2] = -1.0
        w[:, 0] = 60.0 * sign  # whatever the sign of h0, many tokens outrank A and B
        ids = {t: tok.encode(t, add_special_tokens=False)[0] for t in ["A", " A", "B", " B"]}
        for i in ids.values():
            w[i] = 0.0
        w[ids["A"], 0] = w[ids[" A"], 0] = 4.0  # A vs B: a confident-looking preference
        head.weight.copy_(w)
    m.lm_head = head
    m.tie_weights = lambda *a, **k: None
    save(m, "away-judge")
    return out


def label_config(tmp_path, model, **extra) -> LabelConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    pairs = write_pairs_file(tmp_path / "pairs3.jsonl", PAIRS)
    return LabelConfig(pairs=str(pairs), constitution=str(REPO / "constitution" / "default.yaml"),
                       principles_dir=str(REPO / "principles"), out=str(tmp_path / "out"), few_shot=0,
                       labeler={"backend": "transformers", "model": str(model), "dtype": "float32",
                                "max_model_len": 512, "on_overflow": "truncate", "options": {"device": "cpu"}},
                       **extra)


def test_nan_judge_is_named_in_one_line(tmp_path, judges, capsys):
    """#1: `cai label` on a NaN judge: one line naming NaN (was `p: Input should be less than or equal to 1`)."""
    from cai.cli.main import main

    cfg = label_config(tmp_path, judges / "nan-judge")
    code = main(["label", "--pairs", cfg.pairs, "--constitution", cfg.constitution, "--principles-dir", cfg.principles_dir,
                 "--model", cfg.labeler.model, "--backend", "transformers", "--few-shot", "0", "-O", "on_overflow=truncate",
                 "-O", "device=cpu", "--out", cfg.out])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "NaN" in errors[0] and "3 of 3 pairs failed (nan 3)" in errors[0], err
    assert "Input should be" not in err
    summary = json.loads((Path(cfg.out) / "summary.json").read_text())
    assert summary["failed"] == 3 and summary["failed_by_reason"] == {"nan": 3}
    assert summary["judge_health"]["status"] == "unhealthy"
    assert summary["failures"][0].startswith("pairs3.jsonl:1: ")  # named by file and line
    assert not (Path(cfg.out) / "data.jsonl").exists()


def test_away_judge_one_order_writes_no_labels(tmp_path, judges, monkeypatch):
    """#5: `--one-order` on a judge with ~1e-20 of its mass on the labels: no labels (was p 0.86-0.94)."""
    monkeypatch.delenv("CAI_MIN_LABEL_MASS")  # the real default floor (0.1)
    with pytest.raises(CaiError, match=r"3 of 3 pairs failed \(below_label_mass 3\).*label mass .* < floor 0.1"):
        run_label(label_config(tmp_path, judges / "away-judge", both_orders=False))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    h = summary["judge_health"]
    assert h["failures"] == {"below_label_mass": 3} and h["status"] == "unhealthy"
    assert h["label_mass"]["n"] == 3 and h["label_mass"]["median"] < 1e-6
    assert summary["pairs"] == 0


def test_error_policy_stops_and_floor_is_a_flag(tmp_path, judges, monkeypatch):
    monkeypatch.delenv("CAI_MIN_LABEL_MASS")
    with pytest.raises(CaiError, match="labeler health: unhealthy.*stopping"):
        run_label(label_config(tmp_path, judges / "away-judge", judge_health="error", chunk_size=1))
    # a floor of 0 lets the same judge through: the numbers, not the model, decide
    summary = run_label(label_config(tmp_path / "zero", judges / "away-judge", min_label_mass=0.0, both_orders=False))
    assert summary["pairs"] == 3 and summary["failed"] == 0
    assert "median label mass" in " ".join(summary["judge_health"]["reasons"])


def test_some_rows_fail_the_rest_are_labeled(tmp_path):
    """One pair's judgement below the floor: that pair is counted by line, the others are written."""
    def score(conv, labels):
        text = json.dumps(conv)
        return {"A": 0.8, "B": 0.2, "_mass": 1e-9 if "photosynthesis" in text else 0.95}

    pairs = write_pairs_file(tmp_path / "p.jsonl", PAIRS)
    cfg = LabelConfig(pairs=str(pairs), constitution=str(write_constitution(tmp_path)), out=str(tmp_path / "out"),
                      labeler={"backend": "scripted", "model": "s"}, min_label_mass=0.1)
    summary = run_label(cfg, backend=ScriptedBackend.scripted(score=score))
    assert summary["pairs"] == 2 and summary["failed"] == 1 and summary["failed_by_reason"] == {"below_label_mass": 1}
    assert summary["failures"][0].startswith("p.jsonl:3: label mass 1e-09 < floor 0.1")
    assert summary["judge_health"]["failed_ids"]["below_label_mass"]
