"""A scripted stand-in model for unit tests of the SL-CAI stages (rendering, parsing, flow)."""

from __future__ import annotations

from cai.backends.base import Backend, BackendConfig, Completion


class EchoCritic(Backend):
    """Answers by stage, recognizable from the last user message; records every call."""

    name = "test-echo"

    def __init__(self, verdict: str = "revise", revision_prefix: str = "Sure, here is a revised response:\n"):
        super().__init__(BackendConfig(backend="transformers", model="echo"))
        self.calls: list[tuple[str, int]] = []
        self.verdict = verdict
        self.revision_prefix = revision_prefix

    def _answer(self, conv):
        last = conv[-1]["content"]
        # The default templates end the requests with these sentences.
        if "Do not rewrite the response yet" in last:
            return "critique", f"The response could be kinder.\nVerdict: {self.verdict}"
        if "Reply with the rewritten response only" in last:
            return "revision", f"{self.revision_prefix}A kinder answer to: {conv[0]['content'][:40]}"
        return "draft", f"Draft answer to: {last}"

    def generate(self, conversations, sampling=None):
        out, stages = [], set()
        for conv in conversations:
            stage, text = self._answer(conv)
            stages.add(stage)
            out.append([Completion(text=text, prompt_tokens=10, completion_tokens=5, finish_reason="stop")])
        self.calls.append((",".join(sorted(stages)), len(conversations)))
        return out

    def score_choices(self, prompts, options):
        raise NotImplementedError
