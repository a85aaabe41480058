"""Constitutions: loading, the content hash, and how rounds pick principles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cai.principles.constitution import load_constitution
from cai.core.errors import CaiError
from cai.principles.templates import DEFAULT_TEMPLATES

REPO = Path(__file__).resolve().parents[1]


def principle(pid: str, tags: str = "[general]", critique: str | None = None, version: str = "1.0.0",
              weight: str | None = None) -> str:
    front = ["---", f"id: {pid}", f"version: {version}", f"title: The {pid} principle", f"tags: {tags}"]
    if weight:
        front.append(f"weight: {weight}")
    return "\n".join(front + [
        "---",
        f"## Critique\n{critique or f'Say how the response fails on {pid}.'}",
        f"\n## Revision\nRewrite the response to do better on {pid}.",
        f"\n## Preference\nWhich response does better on {pid}?\n",
    ])


def make_library(root: Path, principles: dict[str, str], constitution: str, name: str = "c") -> Path:
    (root / "principles").mkdir(parents=True, exist_ok=True)
    (root / "constitution").mkdir(parents=True, exist_ok=True)
    for pid, text in principles.items():
        (root / "principles" / f"{pid}.md").write_text(text, encoding="utf-8")
    path = root / "constitution" / f"{name}.yaml"
    path.write_text(constitution, encoding="utf-8")
    return path


THREE = {
    "alpha": principle("alpha", "[safety]"),
    "beta": principle("beta", "[helpful]"),
    "gamma": principle("gamma", "[helpful, safety]"),
}

BASE = """\
name: c
version: 1.0.0
description: A small test constitution.
principles:
  tags: [safety, helpful]
sampling:
  strategy: random
  seed: 7
rounds: 2
priorities: [safety, helpful]
"""


# --------------------------------------------------------------------------- loading


def test_shipped_constitutions_load():
    for path in sorted((REPO / "constitution").glob("*.yaml")):
        c = load_constitution(path)
        assert c.name == path.stem and c.principles
        assert c.ref.startswith(f"{c.name}@{c.spec.version}#") and len(c.hash) == 64
    default = load_constitution(REPO / "constitution" / "default.yaml")
    assert {p.id for p in default.principles} == {p.stem for p in (REPO / "principles").glob("*.md")}
    assert default.weight(next(p for p in default.principles if p.id == "harm-minors")) == 2.0
    harmless = load_constitution(REPO / "constitution" / "harmless.yaml")
    assert all("harmless" in p.tags for p in harmless.principles)


def test_principles_found_beside_the_constitution_folder(tmp_path, monkeypatch):
    path = make_library(tmp_path / "lib", THREE, BASE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the library: the folder must come from the constitution's path
    c = load_constitution(path)
    assert [p.id for p in c.principles] == ["alpha", "gamma", "beta"]
    monkeypatch.chdir(tmp_path / "lib" / "constitution")
    assert load_constitution("c.yaml").hash == c.hash  # a relative path works too


def test_explicit_principles_dir(tmp_path):
    path = make_library(tmp_path, {}, BASE)
    other = tmp_path / "other"
    other.mkdir()
    for pid, text in THREE.items():
        (other / f"{pid}.md").write_text(text, encoding="utf-8")
    assert len(load_constitution(path, principles_dir=other).principles) == 3
    with pytest.raises(CaiError, match="principles directory not found"):
        load_constitution(path, principles_dir=tmp_path / "nope")


def test_selection_ids_globs_tags_and_exclude(tmp_path):
    lib = dict(THREE, **{"alpha-two": principle("alpha-two", "[other]"), "delta": principle("delta", "[other]")})
    path = make_library(tmp_path, lib, "name: c\nversion: 1.0.0\nprinciples:\n  ids: ['alpha*', beta]\n"
                                       "  tags: [other]\n  exclude: [delta]\n")
    assert sorted(p.id for p in load_constitution(path).principles) == ["alpha", "alpha-two", "beta"]


@pytest.mark.parametrize(
    "tail,line,phrase",
    [
        ("  ids: [alpah]\n", 4, "selects unknown principle 'alpah' (did you mean 'alpha'?)"),
        ("  tags: [saftey]\n", 4, "tag 'saftey' matches no principle (did you mean 'safety'?)"),
        ("  ids: [alpha]\nweights: {beta: 2}\n", 5, "weight for 'beta'"),
        ("  ids: [alpha]\nsampling: {strategy: random, seeds: 1}\n", 5, "unknown 'sampling' key 'seeds'"),
    ],
)
def test_load_constitution_errors_are_one_line(tmp_path, tail, line, phrase):
    path = make_library(tmp_path, THREE, "name: c\nversion: 1.0.0\nprinciples:\n" + tail)
    with pytest.raises(CaiError) as info:
        load_constitution(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and phrase in str(info.value)
    assert "\n" not in str(info.value)


def test_broken_principle_in_library_is_reported(tmp_path):
    path = make_library(tmp_path, dict(THREE, beta=principle("beta", "3")), BASE)
    with pytest.raises(CaiError, match=r"beta\.md:5: tags"):
        load_constitution(path)


def test_templates_default_and_override(tmp_path):
    path = make_library(tmp_path, THREE, BASE + "templates:\n  critique: 'Check: {{ request }}'\n")
    c = load_constitution(path)
    assert c.template("critique") == "Check: {{ request }}"
    assert c.template("revision") == DEFAULT_TEMPLATES["revision"]


# --------------------------------------------------------------------------- content hash

REFORMATTED = """\
# the same constitution, written differently
priorities:
    - safety
    - helpful
rounds: 2

sampling: {seed: 7, strategy: random}
principles:
    tags:
        - safety
        - helpful
version: "1.0.0"
description: "A small test constitution."
name: c
"""


def test_hash_ignores_formatting(tmp_path):
    h0 = load_constitution(make_library(tmp_path / "a", THREE, BASE)).hash
    assert load_constitution(make_library(tmp_path / "b", THREE, REFORMATTED)).hash == h0
    # principle files: reordered front matter, block-style tags, extra blank lines, trailing spaces
    alpha = THREE["alpha"]
    reformatted = alpha.replace("id: alpha\nversion: 1.0.0\n", "version: '1.0.0'\nid: alpha\n")
    reformatted = reformatted.replace("tags: [safety]", "tags:\n  - safety")
    reformatted = reformatted.replace("\n## ", "\n\n\n## ").replace("## Critique\n", "## Critique   \n\n\n")
    reformatted = reformatted.replace("on alpha.", "on alpha.   \n\n") + "\n\n\n"
    assert reformatted != alpha
    lib = dict(THREE, alpha=reformatted)
    assert load_constitution(make_library(tmp_path / "c", lib, BASE)).hash == h0
    # a principle the constitution does not select does not change the hash
    lib = dict(THREE, unused=principle("unused", "[other]"))
    assert load_constitution(make_library(tmp_path / "d", lib, BASE)).hash == h0


@pytest.mark.parametrize(
    "change",
    ["critique text", "principle version", "added principle", "weight", "seed", "template"],
)
def test_hash_changes_with_content(tmp_path, change):
    h0 = load_constitution(make_library(tmp_path / "a", THREE, BASE)).hash
    lib, manifest = dict(THREE), BASE
    if change == "critique text":
        lib["beta"] = principle("beta", "[helpful]", critique="Say how the response fails on beta!")
    elif change == "principle version":
        lib["beta"] = principle("beta", "[helpful]", version="1.0.1")
    elif change == "added principle":
        lib["delta"] = principle("delta", "[helpful]")
    elif change == "weight":
        manifest = BASE + "weights: {beta: 2}\n"
    elif change == "seed":
        manifest = BASE.replace("seed: 7", "seed: 8")
    elif change == "template":
        manifest = BASE + "templates: {revision: 'Now: {{ request }}'}\n"
    c = load_constitution(make_library(tmp_path / "b", lib, manifest))
    assert c.hash != h0
    assert c.ref != f"c@1.0.0#{h0[:12]}"


# --------------------------------------------------------------------------- pick


def constitution(tmp_path, sampling: str, lib=None, extra: str = ""):
    text = BASE.replace("sampling:\n  strategy: random\n  seed: 7\n", sampling) + extra
    return load_constitution(make_library(tmp_path, lib or THREE, text))


def test_pick_random_is_deterministic(tmp_path):
    c = constitution(tmp_path / "a", "sampling: {strategy: random, seed: 3}\n")
    again = constitution(tmp_path / "b", "sampling: {strategy: random, seed: 3}\n")
    keys = [f"prompt-{i}" for i in range(200)]
    picks = [[p.id for p in c.pick(k, r)] for k in keys for r in range(3)]
    assert picks == [[p.id for p in again.pick(k, r)] for k in keys for r in range(3)]
    assert all(len(p) == 1 for p in picks)
    assert len({tuple(p) for p in picks}) == 3  # every principle gets picked


def test_pick_random_differs_across_seeds_and_rounds(tmp_path):
    a = constitution(tmp_path / "a", "sampling: {strategy: random, seed: 1}\n")
    b = constitution(tmp_path / "b", "sampling: {strategy: random, seed: 2}\n")
    keys = [f"prompt-{i}" for i in range(100)]
    same_seed_a = [a.pick(k, 0)[0].id for k in keys]
    assert same_seed_a != [b.pick(k, 0)[0].id for k in keys]
    assert same_seed_a != [a.pick(k, 1)[0].id for k in keys]


def test_pick_respects_weights(tmp_path):
    lib = dict(THREE, delta=principle("delta", "[helpful]"))
    c = constitution(tmp_path / "a", "sampling: {strategy: random, seed: 0}\n", lib, "weights: {delta: 10}\n")
    counts = Counter(c.pick(f"key-{i}", 0)[0].id for i in range(2000))
    # expected share 10/13 ≈ 77%; each weight-1 principle ≈ 7.7%
    assert counts["delta"] > 1300
    assert all(80 < counts[pid] < 250 for pid in ("alpha", "beta", "gamma")), counts
    # the weight in the principle file is used when the constitution gives none
    lib = dict(THREE, delta=principle("delta", "[helpful]", weight="10"))
    c = constitution(tmp_path / "b", "sampling: {strategy: random, seed: 0}\n", lib)
    counts = Counter(c.pick(f"key-{i}", 0)[0].id for i in range(2000))
    assert counts["delta"] > 1300


def test_pick_per_round_without_replacement(tmp_path):
    c = constitution(tmp_path, "sampling: {strategy: random, seed: 0, per_round: 2}\n")
    for i in range(50):
        ids = [p.id for p in c.pick(f"k{i}", 0)]
        assert len(ids) == 2 and len(set(ids)) == 2
    big = constitution(tmp_path / "b", "sampling: {strategy: random, seed: 0, per_round: 9}\n")
    assert sorted(p.id for p in big.pick("k", 0)) == ["alpha", "beta", "gamma"]


def test_round_robin_cycles_through_all(tmp_path):
    lib = dict(THREE, delta=principle("delta", "[helpful]"))
    c = constitution(tmp_path, "sampling: {strategy: round-robin}\n", lib)
    n = len(c.principles)
    for key in ("a", "b", "some prompt"):
        seq = [c.pick(key, r)[0].id for r in range(2 * n)]
        assert sorted(seq[:n]) == sorted(p.id for p in c.principles)  # every principle once per cycle
        assert seq[n:] == seq[:n]  # then it repeats
    starts = {c.pick(f"key-{i}", 0)[0].id for i in range(50)}
    assert len(starts) > 1  # records start at different places


def test_all_orders_by_priorities(tmp_path):
    lib = {
        "a-helpful": principle("a-helpful", "[helpful]"),
        "b-safety": principle("b-safety", "[safety]"),
        "c-honest": principle("c-honest", "[honest]"),
        "d-untagged": principle("d-untagged", "[misc]"),
        "e-safety": principle("e-safety", "[helpful, safety]"),
    }
    text = ("name: c\nversion: 1.0.0\nprinciples:\n  tags: [helpful, safety, honest, misc]\n"
            "sampling: {strategy: all}\npriorities: [safety, honest, helpful]\n")
    c = load_constitution(make_library(tmp_path, lib, text))
    order = ["b-safety", "e-safety", "c-honest", "a-helpful", "d-untagged"]
    assert [p.id for p in c.pick("any", 0)] == order
    assert [p.id for p in c.pick("other", 5)] == order
    assert [c.priority(p) for p in c.principles] == [0, 0, 1, 2, 3]
