"""Errors no command-specific check caught still end as one line and exit 2, not a traceback."""

from __future__ import annotations

from cai.cli.main import main


def test_out_path_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    code = main(["generate", "--constitution", "harmless", "--prompts", str(prompts),
                 "--model", "m", "--backend", "scripted", "--out", str(afile)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "must be a folder" in err


def test_unusable_models_dir_is_one_line(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("CAI_MODELS_DIR", str(afile / "sub"))
    code = main(["models", "path", "smollm2-135m-instruct"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "not a writable folder" in err or "needs the package" in err  # the latter without the model


def test_options_validated_by_pydantic_are_one_line(tmp_path, capsys):
    code = main(["principles", "test", "harm-cyber", "--model", "m", "--min-accuracy", "80"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
