"""The judge on OpenAI-compatible servers that are not vLLM (issue 26 item 2; field cases #5-#8).

Servers here are :mod:`cai.testing.openai_stub` child processes on 127.0.0.1 behaving as the
OpenAI API does (no continuation of an assistant message, vLLM fields refused, top_logprobs <= 20),
as a server without log-probs, as a reasoning model, and as a rate-limited one (Retry-After 2 s).
"""

from __future__ import annotations

import json
import logging
import math
import time

import pytest

from cai.backends import load_backend
from cai.backends.http import BatchFailed, RequestFailed
from cai.backends.openai_choices import answer_first, parse_verdict
from cai.core.errors import CaiError
from cai.judge import RATINGS_5, Judge, PairItem, PointItem
from cai.judge.health import HealthPolicy, judgement_failure
from cai.principles.constitution import load_constitution
from cai.principles.library import find_constitution
from cai.testing.openai_stub import StubServer

PROMPT = [{"role": "user", "content": "My bike chain keeps slipping. What should I do?"}]
GOOD = "Check the chain for wear and adjust the derailleur's limit screws."
BAD = "Buy a new bike."


def backend(server, **options):
    opts = {"base_urls": [server.base_url], "timeout": 10, "max_retries": 2, "backoff": 0.01,
            "max_backoff": 0.05, **options}
    return load_backend(backend="openai", model="stub", options=opts)


def requests(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def shipped():
    c = load_constitution(find_constitution("default"))
    return c, c.principles[0]


def test_shipped_constitution_judges_on_an_openai_api_like_server(tmp_path, shipped, caplog):
    constitution, principle = shipped
    log = tmp_path / "served.jsonl"
    with StubServer("api", mode="openai", log=log) as server:
        b = backend(server)
        judge = Judge(b, constitution)
        with caplog.at_level(logging.WARNING, logger="cai.backends"):
            [v1, v2] = judge.pairwise([PairItem(PROMPT, GOOD, BAD, [principle]),
                                       PairItem(PROMPT, BAD, GOOD, [principle])])
        info = judge.provenance()["backend_info"]
    sent = requests(log)
    assert len(sent) == 4  # 2 pairs x 2 orders, no vLLM field, no retry
    for r in sent:
        body = r["body"]
        assert body["messages"][-1]["role"] == "user" and body["top_logprobs"] == 20
        assert "The answer is: (" not in body["messages"][-1]["content"]
        assert body["messages"][-1]["content"].endswith("\n\nAnswer with only the letter of your choice: A or B.")
    # The stub prefers whatever is shown as (A): 0.6 vs 0.3 each order, so both orders disagree.
    assert v1.p_x == pytest.approx(0.5) and v1.position_consistent is False
    said = [r.message for r in caplog.records if "cannot continue an assistant message" in r.message]
    assert len(said) == 1  # said once, not per row
    assert info["choice_scoring"].startswith("top_logprobs (answer-first template variant, top 20)")


def test_every_row_carries_its_label_mass_and_source(tmp_path):
    with StubServer("api", mode="openai") as server:
        b = backend(server)
        conv = PROMPT + [{"role": "assistant", "content": "(A) yes\n(B) no\nThe answer is: ("}]
        [row] = b.score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"},
                                  {"role": "assistant", "content": "The answer is: ("}]], ["A", "B"])
        assert row.source == "top_logprobs" and row.mass == pytest.approx(0.9)
        assert row == pytest.approx({"A": 0.6 / 0.9, "B": 0.3 / 0.9})
        # A reply whose first token is no label ("The ..."): no label is listed, so the row fails
        # (labels_missing), never a p of 0.5.
        [lost] = backend(server, prefill="no").score_choices([conv], ["A", "B"])
        assert lost.source == "top_logprobs" and lost.failure == "labels_missing"
        assert all(math.isnan(p) for p in lost.values()) and lost.mass < 1e-3
        assert judgement_failure(lost, HealthPolicy(min_label_mass=0.0)) == "labels_missing"
    with StubServer("api", mode="openai") as server:
        b = backend(server, prefill="yes")
        with pytest.raises(BatchFailed, match="continue_final_message"):  # the OpenAI API refuses it
            b.score_choices([conv], ["A", "B"])


def test_pointwise_rating_judge_uses_the_same_path(tmp_path, shipped):
    """The GRPO pointwise reward's judge (rating prompt, 1-5 labels) on a server that is not vLLM."""
    _, principle = shipped
    log = tmp_path / "served.jsonl"
    with StubServer("api", mode="openai", log=log) as server:
        judge = Judge(backend(server), None, scale=RATINGS_5, dedupe=True)
        [v] = judge.pointwise([PointItem(PROMPT, GOOD, [principle])])
    [sent] = requests(log)
    assert sent["body"]["messages"][-1]["role"] == "user"
    [probs] = v.probs.values()
    assert probs.source == "top_logprobs" and set(probs) == {"1", "2", "3", "4", "5"}
    assert probs["1"] > probs["2"] > probs["3"] and 0.0 < v.score < 0.25


def test_think_mode_is_a_failure_not_a_confident_label(shipped):
    """Case #5: a reasoning model puts 0.8% on the labels; p 0.99 must not pass as a judgement."""
    with StubServer("think", mode="think") as server:
        [row] = backend(server).score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"},
                                                {"role": "assistant", "content": "The answer is: ("}]], ["A", "B"])
    assert row["A"] > 0.98 and row.mass < 0.01 and row.source == "top_logprobs"
    assert judgement_failure(row, HealthPolicy(min_label_mass=0.1)) == "below_label_mass"


def test_server_without_logprobs_gives_generated_verdicts(tmp_path, shipped, caplog):
    """Case #7: an auto fallback to generated verdicts, said once, counted as such."""
    constitution, principle = shipped
    with StubServer("ollama", mode="nologprobs") as server:
        b = backend(server)
        judge = Judge(b, constitution)
        with caplog.at_level(logging.WARNING, logger="cai.backends"):
            [v] = judge.pairwise([PairItem(PROMPT, GOOD, BAD, [principle])])
        assert v.results[0].by_order == {0: 1.0, 1: 0.0}  # the stub always answers "A"
        assert [r for r in caplog.records if "returned no log-probs" in r.message].__len__() == 1
        assert "generated verdicts" in b.describe()["choice_scoring"]
        [row] = b.score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["A", "B"])
        assert row.source == "generated" and row.mass is None and dict(row) == {"A": 1.0, "B": 0.0}
        strict = backend(server, choice_source="top_logprobs")
        with pytest.raises(CaiError, match="returned no log-probs.*choice_source=generated"):
            strict.score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["A", "B"])


def test_server_refusing_logprobs_gives_generated_verdicts():
    with StubServer("o1", mode="refuse-logprobs") as server:
        [row] = backend(server).score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["B", "A"])
        assert row.source == "generated" and dict(row) == {"B": 0.0, "A": 1.0}
        with pytest.raises(CaiError, match="returned no log-probs"):
            backend(server, choice_source="top_logprobs").score_choices(
                [[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["A", "B"])


def test_generated_verdicts_are_parsed_and_unparsable_ones_fail():
    labels = ["A", "B"]
    assert parse_verdict("B", labels) == "B"
    assert parse_verdict(" (A) because it is kinder", labels) == "A"
    assert parse_verdict("The answer is: (B)", labels) == "B"
    assert parse_verdict("<think>A or B? B.</think>\nA", labels) == "A"
    assert parse_verdict("<think>A or B, hmm", labels) is None  # reasoning ran out of budget
    assert parse_verdict("Both (A) and (B) are fine", labels) is None
    assert parse_verdict("Absolutely.", labels) is None  # "A" inside a word is not a label
    assert parse_verdict("4", ["1", "2", "3", "4", "5"]) == "4"
    from cai.backends.openai_choices import generated_probs

    failed = generated_probs(None, labels)
    assert failed.failure == "parse" and all(math.isnan(p) for p in failed.values())
    assert judgement_failure(failed, HealthPolicy(min_label_mass=0.0)) == "parse"


def test_answer_first_variant_rewrites_prefill_demos_and_cot():
    labels = ["A", "B"]
    conv = [{"role": "user", "content": "Q1\n(A) x\n(B) y"}, {"role": "assistant", "content": "The answer is: (B)"},
            {"role": "user", "content": "Q2\n(A) x\n(B) y"}, {"role": "assistant", "content": "The answer is: ("}]
    out = answer_first(conv, labels)
    assert out[1]["content"] == "B" and len(out) == 3 and out[-1]["role"] == "user"
    assert out[-1]["content"] == "Q2\n(A) x\n(B) y\n\nAnswer with only the letter of your choice: A or B."
    cot = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Let's think. B is kinder.\nThe answer is: ("}]
    out = answer_first(cot, labels)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[1]["content"] == "Let's think. B is kinder."
    assert answer_first(conv[2:], ["1", "2", "3"])[-1]["content"].endswith("the number of your choice: 1, 2 or 3.")
    plain = [{"role": "user", "content": "Reply with A or B."}]
    assert answer_first(plain, labels) == plain


def test_retry_after_is_honoured_beyond_max_backoff(tmp_path):
    """Case #8: a 429 with Retry-After waits that long (here 2 s; max_backoff is 0.05 s)."""
    log = tmp_path / "served.jsonl"
    with StubServer("limited", mode="ratelimit", window=2.0, log=log) as server:
        t0 = time.monotonic()
        [row] = backend(server).score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["A", "B"])
        assert time.monotonic() - t0 >= 1.5 and row.source == "top_logprobs"
    assert len(requests(log)) == 2  # one 429, one answer: no retry burnt inside the window


def test_retry_after_beyond_max_retry_wait_fails_naming_the_options(tmp_path):
    with StubServer("limited", mode="ratelimit", window=30.0) as server:
        b = backend(server, max_retries=1, max_retry_wait=0.2)
        t0 = time.monotonic()
        with pytest.raises(CaiError, match="max_retry_wait.*requests_per_minute") as err:
            b.score_choices([[{"role": "user", "content": "Pick.\n(A) yes\n(B) no"}]], ["A", "B"])
        assert time.monotonic() - t0 < 20 and "429" in str(err.value)  # not the server's 30 s
        assert not getattr(err.value, "permanent", False)  # the server may recover: retryable upstream


def test_requests_per_minute_paces_requests(tmp_path):
    log = tmp_path / "served.jsonl"
    with StubServer("api", mode="openai", log=log) as server:
        b = backend(server, requests_per_minute=120)  # 2 a second, a burst of 2
        prompts = [[{"role": "user", "content": f"Pick {i}.\n(A) yes\n(B) no"}] for i in range(6)]
        t0 = time.monotonic()
        rows = b.score_choices(prompts, ["A", "B"])
        assert time.monotonic() - t0 >= 1.8 and len(rows) == 6
    times = sorted(r["t"] for r in requests(log))
    assert times[-1] - times[0] >= 1.8


def test_errors_that_cannot_change_are_not_retried_by_the_rl_reward():
    from cai.backends.http import HTTPError
    from cai.train.online.judging import with_retries

    calls = []

    def call():
        calls.append(1)
        raise BatchFailed("openai backend: score_choices, row 0: continuing an assistant message needs a vLLM "
                          "server", [None], [0], permanent=True)

    with pytest.raises(CaiError, match="not retried"):
        with_retries(call, retries=3, wait=5.0, what="constitution reward")
    assert len(calls) == 1
    calls.clear()

    def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise RequestFailed("request failed after 4 attempts: 503")
        return "ok"

    assert with_retries(flaky, retries=2, wait=0.01, what="constitution reward") == "ok" and len(calls) == 2
    assert HTTPError("u", 400, "bad").permanent


def test_http_client_errors_are_permanent_and_not_retried(tmp_path):
    log = tmp_path / "served.jsonl"
    with StubServer("api", mode="openai", log=log) as server:
        with pytest.raises(BatchFailed) as err:
            backend(server, top_logprobs=20, prefill="yes").score_choices(
                [[{"role": "user", "content": "x"}, {"role": "assistant", "content": "The answer is: ("}]], ["A", "B"])
    assert err.value.permanent and len(requests(log)) == 1


@pytest.mark.vllm
@pytest.mark.slow
def test_generic_path_on_a_real_vllm_serve_bounds_the_exact_mass(vllm_server):
    """On the real ``vllm serve``: the same prefilled prompt read as a generic server reads it
    (``top_logprobs``, 20) agrees with the exact path (``logprob_token_ids``): a listed label has
    the same probability, a missing one is bounded above, so the generic mass is >= the exact one.
    The answer-first variant (what a server without continuation gets) runs there too."""
    exact = load_backend(backend="openai", model="tiny", options={"base_urls": [vllm_server.base_url]})
    generic = load_backend(backend="openai", model="tiny",
                           options={"base_urls": [vllm_server.base_url], "server": "generic", "prefill": "yes"})
    first = load_backend(backend="openai", model="tiny",
                         options={"base_urls": [vllm_server.base_url], "server": "generic"})
    prompts = [[{"role": "user", "content": f"Question {i}: which is kinder?\n(A) help\n(B) insult"},
                {"role": "assistant", "content": "The answer is: ("}] for i in range(4)]
    rows_exact = exact.score_choices(prompts, ["A", "B"])
    rows_generic = generic.score_choices(prompts, ["A", "B"])
    for e, g in zip(rows_exact, rows_generic, strict=True):
        assert e.source == "logprobs" and g.source == "top_logprobs"
        assert 0.0 < e.mass <= g.mass + 1e-6
        if not getattr(g, "failure", None) and not generic.stats["choice_rows_label_missing"]:
            assert dict(g) == pytest.approx(dict(e), abs=1e-3)
    rows_first = first.score_choices(prompts, ["A", "B"])
    assert all(r.source == "top_logprobs" and r.mass is not None for r in rows_first)
    assert first.describe()["choice_scoring"].startswith("top_logprobs (answer-first")


def test_tokens_per_minute_paces_by_estimated_tokens():
    from cai.backends.ratelimit import RateLimiter, estimate_tokens
    import asyncio

    payload = {"messages": [{"role": "user", "content": "x" * 100}], "max_tokens": 1}
    cost = estimate_tokens(payload)
    assert cost == len(json.dumps(payload["messages"])) // 4 + 1
    limiter = RateLimiter(tokens_per_minute=600)  # 10 tokens a second: each request ~30 tokens

    async def two():
        t0 = time.monotonic()
        await limiter.acquire(cost)
        first = time.monotonic() - t0
        await limiter.acquire(cost)
        return first, time.monotonic() - t0

    first, second = asyncio.run(two())
    assert first < second / 2 and second >= cost / 10 - 0.1  # the first leaves the bucket in debt: repaid at 10/s
