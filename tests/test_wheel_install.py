"""Installed from a wheel, outside the checkout (issue 27): the wheel carries the shipped library,
and from an empty folder `cai init`, the starter project's loop (on a tiny model) and the README's
Python example work.

The fresh virtual environment gets the wheel with ``--no-deps`` and borrows the test environment's
site-packages through a ``.pth`` path line (not its ``.pth`` files, so the editable install of the
checkout stays invisible), so torch and the rest are not downloaded again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd, env, timeout=300):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return block


@pytest.mark.slow
def test_wheel_installs_and_runs_from_an_empty_folder(tmp_path, tiny_llama):
    # 1. build the wheel from a copy of the sources (nothing is written into the checkout)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "cai", src / "cai", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
          "-w", str(tmp_path / "dist")], cwd=tmp_path, env=os.environ)
    (wheel,) = (tmp_path / "dist").glob("cai_constitution-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("cai/library/principles/harm-high-stakes-advice.md", "cai/library/constitution/default.yaml",
                 "cai/library/recipes/loop-quickstart.yaml", "cai/library/recipes/accelerate/ddp.yaml",
                 "cai/library/starter/loop.yaml", "cai/library/suites/harmful.yaml"):
        assert path in names, path

    # 2. a fresh virtual environment outside the checkout, borrowing this one's packages
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=os.environ)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path, env=os.environ).stdout.strip())
    (site / "_borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path, env=os.environ)

    # 3. from an empty folder: the installed package, its library, cai init, the starter loop
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               CAI_MIN_LABEL_MASS="0", CAI_MODELS_DIR=str(tmp_path / "models"))
    where = _run([str(py), "-c", "import cai; print(cai.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    cai = str(venv / "bin" / "cai")
    listed = _run([cai, "principles", "list", "--constitution", "harmless"], cwd=work, env=env).stdout
    assert "harm-high-stakes-advice" in listed
    _run([cai, "init", "proj"], cwd=work, env=env)
    proj = work / "proj"
    assert _run([cai, "principles", "lint", "--strict"], cwd=proj, env=env).returncode == 0
    recipe = (proj / "loop.yaml").read_text()
    (proj / "loop.yaml").write_text(recipe.replace("policy: smollm2-135m-instruct", f"policy: {tiny_llama}"))
    log = _run([cai, "run", "loop.yaml"], cwd=proj, env=env, timeout=600)
    assert (proj / "runs" / "starter" / "report.html").is_file(), log.stdout[-2000:]
    assert (proj / "runs" / "starter" / "mix" / "train").exists()

    # 4. the README's Python example, with the embedded model's name swapped for the tiny model
    code = _readme_example().replace("smollm2-135m-instruct", str(tiny_llama))
    _run([str(py), "-c", code], cwd=work, env=env, timeout=600)
