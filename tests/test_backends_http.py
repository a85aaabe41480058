"""The openai backend against misbehaving local HTTP servers: retries, failover, clear errors.

Every server here is a real stdlib HTTP server (or a socket that never answers) on 127.0.0.1;
timeouts and backoffs are small so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cai.backends import SamplingConfig, load_backend
from cai.backends.http import BatchFailed
from cai.core.errors import CaiError
from cai.testing.server import free_port

FAST = {"timeout": 0.5, "max_retries": 2, "backoff": 0.01, "max_backoff": 0.05, "server": "generic"}


def chat_answer(text: str, n: int = 1) -> dict:
    return {
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": f"{text}#{i}"},
                "finish_reason": "stop",
            }
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n},
    }


class FakeServer:
    """An OpenAI-ish server answering ``behave(path, body, hit) -> (status, json[, headers])``."""

    def __init__(self, behave):
        self.hits: list[tuple[str, dict, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: dict):
                owner.hits.append((self.path, body, dict(self.headers)))
                status, payload, headers = (*behave(self.path, body, len(owner.hits)), {})[:3]
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

            def do_GET(self):
                self._answer({})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(behave):
        servers.append(FakeServer(behave))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def backend(urls, **options):
    return load_backend(backend="openai", model="m", options={**FAST, "base_urls": urls, **options})


def ok(path, body, hit):
    return 200, chat_answer(body["messages"][-1]["content"], body.get("n", 1))


def test_generate_parses_answers_in_row_order(serve):
    server = serve(ok)
    out = backend([server.base_url]).generate(["a", "b", "c"], SamplingConfig(n=2, max_tokens=3))
    assert [[c.text for c in row] for row in out] == [
        ["a#0", "a#1"],
        ["b#0", "b#1"],
        ["c#0", "c#1"],
    ]
    assert out[0][0].prompt_tokens == 7 and out[0][0].completion_tokens == 3
    body = server.hits[0][1]
    assert body["model"] == "m" and body["max_tokens"] == 3 and body["n"] == 2
    assert "return_token_ids" not in body  # a generic server gets only standard fields


def test_retries_500_twice_then_succeeds(serve):
    server = serve(
        lambda p, b, hit: (500, {"error": {"message": "boom"}}) if hit <= 2 else ok(p, b, hit)
    )
    [[c]] = backend([server.base_url]).generate(["x"], SamplingConfig(max_tokens=2))
    assert c.text == "x#0" and len(server.hits) == 3


def test_429_honours_retry_after(serve):
    server = serve(
        lambda p, b, hit: (429, {"error": "slow down"}, {"Retry-After": "0.3"})
        if hit == 1
        else ok(p, b, hit)
    )
    start = time.monotonic()
    [[c]] = backend([server.base_url], max_backoff=1.0).generate(["x"])
    assert c.text == "x#0" and time.monotonic() - start >= 0.3


def test_persistent_500_fails_naming_the_url(serve):
    server = serve(lambda p, b, hit: (503, {"error": {"message": "overloaded"}}))
    with pytest.raises(
        BatchFailed,
        match=rf"row 0: request failed after 3 attempts: "
        rf"{server.base_url}/chat/completions answered 503: overloaded",
    ):
        backend([server.base_url]).generate(["x"])
    assert len(server.hits) == 3


def test_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog), never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        start = time.monotonic()
        with pytest.raises(CaiError, match=rf"{url}/chat/completions: no answer within 0.5 s"):
            backend([url], max_retries=1).generate(["x"])
        assert time.monotonic() - start < 5


def test_closed_port_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(CaiError, match=rf"after 3 attempts: {url}/chat/completions: ConnectError"):
        backend([url]).generate(["x"])


def test_client_errors_are_not_retried(serve):
    server = serve(lambda p, b, hit: (404, {"error": {"message": "The model `m` does not exist."}}))
    with pytest.raises(CaiError, match="answered 404: The model `m` does not exist"):
        backend([server.base_url]).generate(["x"])
    assert len(server.hits) == 1


def test_requests_spread_over_base_urls_and_fail_over(serve):
    a, b = serve(ok), serve(ok)
    backend([a.base_url, b.base_url]).generate([str(i) for i in range(10)])
    assert len(a.hits) == 5 and len(b.hits) == 5
    dead = f"http://127.0.0.1:{free_port()}/v1"
    out = backend([dead, a.base_url]).generate([str(i) for i in range(6)])
    assert [row[0].text for row in out] == [f"{i}#0" for i in range(6)]  # dead replica skipped


def test_partial_results_are_kept_on_failure(serve):
    def behave(path, body, hit):
        if body["messages"][-1]["content"] == "bad":
            return 500, {"error": {"message": "row-specific failure"}}
        return ok(path, body, hit)

    server = serve(behave)
    with pytest.raises(BatchFailed, match="row 2: .*row-specific failure") as info:
        backend([server.base_url], max_concurrency=1).generate(["a", "b", "bad", "d"])
    partial = info.value.partial
    assert [row[0].text for row in partial[:2]] == ["a#0", "b#0"]
    assert partial[2] is None and 2 in info.value.failed_rows


def test_bounded_concurrency(serve):
    live, peak, lock = [0], [0], threading.Lock()

    def slow(path, body, hit):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return ok(path, body, hit)

    server = serve(slow)
    backend([server.base_url], max_concurrency=3).generate([str(i) for i in range(12)])
    assert peak[0] == 3


def test_api_key_from_environment(serve, monkeypatch):
    server = serve(ok)
    monkeypatch.setenv("CAI_TEST_KEY", "sekret")
    backend([server.base_url], api_key_env="CAI_TEST_KEY").generate(["x"])
    assert server.hits[-1][2].get("Authorization") == "Bearer sekret"
    monkeypatch.delenv("CAI_TEST_KEY")
    backend([server.base_url], api_key_env="CAI_TEST_KEY").generate(["x"])
    assert "Authorization" not in server.hits[-1][2]


def test_greedy_n_is_one_request_copied(serve):
    server = serve(ok)
    [row] = backend([server.base_url]).generate(["x"], SamplingConfig(temperature=0, n=3))
    assert [c.text for c in row] == ["x#0"] * 3 and server.hits[0][1]["n"] == 1


def test_generic_server_scores_choices_from_top_logprobs(serve):
    def behave(path, body, hit):
        assert body["logprobs"] is True and body["max_tokens"] == 1
        top = [
            {"token": "A", "logprob": -1.0},
            {"token": " B", "logprob": -2.0},
            {"token": "B", "logprob": -2.0},
            {"token": "x", "logprob": -0.1},
        ]
        return 200, {
            "choices": [
                {
                    "index": 0,
                    "message": {"content": "x"},
                    "logprobs": {"content": [{"token": "x", "top_logprobs": top}]},
                }
            ]
        }

    server = serve(behave)
    [probs] = backend([server.base_url]).score_choices(["A or B?"], ["A", "B", "C"])
    import math

    a, b = math.exp(-1), 2 * math.exp(-2)
    assert probs == pytest.approx({"A": a / (a + b), "B": b / (a + b), "C": 0.0})


def test_generic_server_cannot_continue_an_assistant_message(serve):
    server = serve(ok)
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is"}]
    with pytest.raises(CaiError, match="needs a vLLM server"):
        backend([server.base_url]).generate([conv])


def test_works_inside_a_running_event_loop(serve):
    import asyncio

    server = serve(ok)

    async def main():
        return backend([server.base_url]).generate(["x"])

    assert asyncio.run(main())[0][0].text == "x#0"


def test_server_refusing_seed_with_n_gets_one_seeded_request_per_sample(serve):
    def behave(path, body, hit):
        if body.get("seed") is not None and body.get("n", 1) > 1:
            return 400, {"error": {"message": "seed is not supported with n > 1"}}
        return 200, chat_answer(f"seed {body.get('seed')}", body.get("n", 1))

    server = serve(behave)
    b = backend([server.base_url])
    [row] = b.generate(["x"], SamplingConfig(temperature=1.0, n=3, seed=7))
    assert [c.text for c in row] == ["seed 7#0", "seed 8#0", "seed 9#0"]
    refused = len(server.hits)
    assert refused == 4  # the refused request, then one per sample
    [again] = b.generate(["y"], SamplingConfig(temperature=1.0, n=2, seed=1))  # remembered: no refused try
    assert [c.text for c in again] == ["seed 1#0", "seed 2#0"] and len(server.hits) == refused + 2
    plain = serve(lambda path, body, hit: (400, {"error": {"message": "unknown model"}}))
    with pytest.raises(CaiError, match="unknown model"):  # any other 400 is not taken for a refused seed
        backend([plain.base_url]).generate(["z"], SamplingConfig(n=2, seed=1))
    assert len(plain.hits) == 1


def test_separate_reasoning_field_becomes_a_think_block(serve):
    from cai.sl.parsing import clean_revision, without_reasoning

    def behave(path, body, hit):
        msg = body["messages"][-1]["content"]
        if msg == "long":  # the budget ran out inside the reasoning: no content at all
            choice = {"index": 0, "message": {"content": None, "reasoning_content": "Step 1, step 2"},
                      "finish_reason": "length"}
        else:
            choice = {"index": 0, "message": {"content": "Be kind.", "reasoning": "They asked nicely."},
                      "finish_reason": "stop"}
        return 200, {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}

    server = serve(behave)
    [[ok_row], [long_row]] = backend([server.base_url]).generate(["short", "long"])
    assert ok_row.text == "<think>\nThey asked nicely.\n</think>\n\nBe kind."
    assert without_reasoning(ok_row.text, ok_row.finish_reason) == ("Be kind.", False)
    assert clean_revision(long_row.text, long_row.finish_reason) == (None, "truncated")


def top_server(top):
    def behave(path, body, hit):
        return 200, {"choices": [{"index": 0, "message": {"content": "x"},
                                  "logprobs": {"content": [{"token": "x", "top_logprobs": top}]}}]}
    return behave


def test_label_missing_from_top_logprobs_is_bounded_not_zero(serve):
    import math

    # Only A is listed: B is at most as likely as the last listed token (and the mass left over).
    top = [{"token": "A", "logprob": math.log(0.3)}, {"token": "x", "logprob": math.log(0.2)},
           {"token": "y", "logprob": math.log(0.1)}]
    server = serve(top_server(top))
    b = backend([server.base_url], top_logprobs=3)
    [probs] = b.score_choices(["A or B?"], ["A", "B"])
    assert probs == pytest.approx({"A": 0.75, "B": 0.25})  # B <= min(0.1, 1 - 0.6)
    assert b.stats["choice_rows_label_missing"] == 1


def test_leading_space_markers_match_labels(serve):
    import math

    top = [{"token": "\u2581A", "logprob": math.log(0.5)}, {"token": "\u0120B", "logprob": math.log(0.25)},
           {"token": "B", "logprob": math.log(0.25)}]
    server = serve(top_server(top))
    b = backend([server.base_url])
    [probs] = b.score_choices(["A or B?"], ["A", "B"])
    assert probs == pytest.approx({"A": 0.5, "B": 0.5}) and not b.stats


def test_vllm_server_gets_neutral_sampling_fields_generic_does_not(serve):
    # `vllm serve` fills unset fields from the model's generation_config.json (repetition_penalty,
    # top_k, min_p, ...): requests to it pin them; a generic server gets only standard fields.
    server = serve(ok)
    for kind in ("vllm", "generic"):
        b = backend([server.base_url], server=kind)
        b.generate(["x"], SamplingConfig(temperature=0, max_tokens=2))
        body = server.hits[-1][1]
        if kind == "vllm":
            pinned = (body["repetition_penalty"], body["top_k"], body["min_p"], body["presence_penalty"])
            assert pinned == (1.0, -1, 0.0, 0.0)
            assert b.describe()["sampling_extras"]["repetition_penalty"] == 1.0
        else:
            assert not {"repetition_penalty", "top_k", "min_p"} & set(body)
            assert b.describe()["sampling_extras"] == "server defaults"
