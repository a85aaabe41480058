"""Ray workers behind one backend: same outputs as one process for generate, sample and label,
a worker SIGKILLed mid-run loses and duplicates nothing, errors come back as one line.

Every test joins a local Ray cluster (a head node on this machine, two CPUs) that this module starts
and stops, through ``ray_address`` as a user on a real cluster would.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from cai.backends import load_backend
from cai.core.errors import CaiError

ray = pytest.importorskip("ray", reason="needs the ray extra")

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU Ray head node on this machine, its address; stopped (its own processes) after."""
    from ray.cluster_utils import Cluster

    # Ray resolves 127.0.0.1 to this node's own address, so the head binds that (no network needed).
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    yield c.address
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"Question {i}: how do I fix a bike?"}) + "\n"
                            for i in range(n)))
    return path


def tiny_config(tiny_llama, **kw) -> dict:
    return dict(backend="transformers", model=str(tiny_llama), dtype="float32", max_model_len=1024,
                on_overflow="truncate",
                options={"batch_size": 4, "device": "cpu"}, **kw)


def test_tiny_model_stages_match_one_process(tmp_path, tiny_llama, cluster):
    """generate and label on two workers give what one process gives (greedy decoding; `sample`
    refuses greedy decoding, and is compared on the scripted backend below)."""
    from cai.feedback import LabelConfig, run_label
    from cai.data.pairs import read_pairs
    from cai.sl import GenerateConfig, run_generate
    from cai.data.store import iter_records

    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    one = load_backend(**tiny_config(tiny_llama))
    many = load_backend(**tiny_config(tiny_llama, workers=2, ray_address=cluster))
    try:
        assert many.live_workers == 2 and len(set(many.pids)) == 2
        assert many.describe()["workers"] == 2 and many.config.backend == "transformers"
        gen = dict(constitution=str(REPO / "constitution" / "harmless.yaml"), prompts=str(prompts),
                   policy=tiny_config(tiny_llama), rounds=1, export=False,
                   sampling={"temperature": 0.0, "max_tokens": 8})
        runs = {}
        for name, backend in (("one", one), ("many", many)):
            run_generate(GenerateConfig.model_validate({**gen, "out": str(tmp_path / f"g-{name}")}),
                         backends=(backend, backend))
            runs[name] = [(r.id, r.status, r.draft, [s.critique for s in r.steps], r.final)
                          for r in iter_records(tmp_path / f"g-{name}" / "records.jsonl")]
        assert runs["one"] == runs["many"] and len(runs["one"]) == 6
        assert any(draft for _, _, draft, _, _ in runs["one"])

        # Label pairs that differ (greedy samples of one prompt are identical): two prompts' drafts.
        drafts = [(prompt, draft) for (_, _, draft, _, _), prompt in
                  zip(runs["one"], ["Question 0", "Question 1", "Question 2"], strict=False)]
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"prompt": p, "chosen": f"{d or p} Yes.", "rejected": f"{d or p} No."}) + "\n"
                                 for p, d in drafts))
        labels = {}
        for name, backend in (("one", one), ("many", many)):
            cfg = LabelConfig.model_validate(dict(
                pairs=str(pairs), constitution="harmless", out=str(tmp_path / f"l-{name}"),
                labeler=tiny_config(tiny_llama), few_shot=0))
            run_label(cfg, backend=backend)
            labels[name] = sorted((p.chosen_text, p.p_chosen) for p in read_pairs(tmp_path / f"l-{name}"))
        assert [x for x, _ in labels["one"]] == [x for x, _ in labels["many"]] and len(labels["one"]) == 3
        assert [p for _, p in labels["one"]] == pytest.approx([p for _, p in labels["many"]], abs=1e-5)
    finally:
        many.close()
        one.close()


def test_sigkill_of_a_worker_mid_run_loses_nothing(tmp_path, cluster):
    """A worker killed while it holds a shard: Ray restarts it, the shard goes to a live worker, and
    samples.jsonl has every prompt once, as a single process writes it."""
    from cai.feedback import SampleConfig, run_sample
    from cai.feedback.sampling import iter_samples

    prompts = write_prompts(tmp_path / "p.jsonl", 12)
    policy = {"backend": "scripted", "model": "scripted", "options": {"delay": 1.0}}

    def run(name, backend=None):
        cfg = SampleConfig.model_validate(dict(prompts=str(prompts), out=str(tmp_path / name), n=2,
                                               chunk_size=6, policy=policy))
        run_sample(cfg, backend=backend)
        return [(r.id, [s.text for s in r.samples]) for r in iter_samples(tmp_path / name / "samples.jsonl")]

    many = load_backend(**policy, workers=2, ray_address=cluster)
    try:
        victim = many.pids[0]
        killer = threading.Timer(0.5, os.kill, (victim, signal.SIGKILL))  # both workers mid-shard
        killer.start()
        got = run("many", many)
        killer.join()
        assert many.retried_shards >= 1  # the victim's shard was handed on
        assert many.live_workers == 2  # restarted, not retired
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)
        [[after]] = many.generate(["still there?"])
        assert after.text == "still there?"
    finally:
        many.close()
    expected = run("one")
    assert got == expected and len(got) == 12 and len({i for i, _ in got}) == 12


def test_worker_errors_are_one_line(tmp_path, cluster):
    """A backend error inside a worker reaches the driver as the same CaiError; a worker that
    cannot build its backend is named."""
    backend = load_backend(backend="scripted", model="scripted", workers=2, ray_address=cluster,
                           options={"replies": ["only one"], "cycle": False})
    try:
        with pytest.raises(CaiError, match="out of scripted replies after 1"):
            backend.generate(["a", "b", "c", "d"], None)
    finally:
        backend.close()
    with pytest.raises(CaiError, match="could not start the transformers backend"):
        load_backend(backend="transformers", model=str(tmp_path / "no-such-model"), workers=2,
                     ray_address=cluster)


def test_cli_workers_flag(tmp_path, cluster, capsys):
    """`cai sample --workers 2 --ray-address ...` writes what a plain run writes."""
    from cai.cli.main import main
    from cai.feedback.sampling import iter_samples

    prompts = write_prompts(tmp_path / "p.jsonl", 5)
    common = ["sample", "--prompts", str(prompts), "--backend", "scripted", "--model", "scripted",
              "--n", "2", "--chunk-size", "4"]
    assert main([*common, "--out", str(tmp_path / "a"), "--workers", "2", "--ray-address", cluster]) == 0, \
        capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    a, b = ([(r.id, [s.text for s in r.samples]) for r in iter_samples(tmp_path / x / "samples.jsonl")]
            for x in "ab")
    assert a == b and len(a) == 5
    [first] = list(iter_samples(tmp_path / "a" / "samples.jsonl"))[:1]
    assert first.provenance["backend_info"]["workers"] == 2 and first.provenance["backend"] == "scripted"


def test_more_workers_than_the_cluster_holds_fail_at_once(cluster):
    with pytest.raises(CaiError, match="3 Ray workers need 3 CPUs and 0 GPUs; the cluster has 2 CPUs"):
        load_backend(backend="scripted", model="scripted", workers=3, ray_address=cluster)


def test_cli_eval_behavior_on_workers(tmp_path, cluster, capsys):
    """`cai eval behavior --workers 2`: the model under test answers on Ray workers, and the
    results are those of a plain run."""
    from cai.cli.main import main

    common = ["eval", "behavior", "--model", "scripted", "--backend", "scripted", "--suites", "over-refusal",
              "--limit", "4", "--n-boot", "100"]
    assert main([*common, "--out", str(tmp_path / "a"), "--workers", "2", "--ray-address", cluster]) == 0, \
        capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    a, b = (json.loads((tmp_path / x / "summary.json").read_text())["results"] for x in "ab")
    assert a == b and a[0]["probes"] == 4
