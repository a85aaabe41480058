"""Reward-model scores: prompt + response text through the reward model's own tokenizer.

The reward model is a Hugging Face ``AutoModelForSequenceClassification`` folder with
``num_labels=1`` (for instance one trained by ``cai train reward``). It may use a different
tokenizer from the policy's, so responses are decoded to text and re-encoded: the conversation
plus an assistant turn through the reward model's chat template when it has one, otherwise the
turns' contents joined by newlines.
"""

from __future__ import annotations

import torch

from cai.core.errors import CaiError
from cai.train.ppo.models import _DTYPES, load_tokenizer


class RewardScorer:
    def __init__(self, path: str, device, dtype: str = "float32", max_length: int = 4096):
        from transformers import AutoModelForSequenceClassification

        from cai.models import resolve_model

        path = resolve_model(path)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=_DTYPES[dtype])
        except (OSError, ValueError) as exc:
            raise CaiError(f"cannot load the reward model '{path}': {str(exc).splitlines()[0]}") from None
        if model.config.num_labels != 1:
            raise CaiError(f"the reward model '{path}' has num_labels={model.config.num_labels}; PPO needs 1 (a scalar score)")
        from cai.models.padding import align_pad_id

        self.tokenizer = load_tokenizer(path, padding_side="right")
        align_pad_id(self.tokenizer, model, name=path)  # the classifier reads the last non-pad token
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = device
        from cai.train.score import fit_context

        self.max_length = fit_context(model, self.tokenizer, max_length)  # as cai score reads it

    def render(self, messages: list[dict], response: str) -> str:
        """The text the reward model scores for one prompt and response."""
        conversation = messages + [{"role": "assistant", "content": response}]
        if self.tokenizer.chat_template:
            from cai.backends.chat import apply_template

            return apply_template(self.tokenizer, conversation, tokenize=False)
        return "\n".join(m["content"] for m in conversation)

    @torch.no_grad()
    def score(self, texts: list[str], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, cut)``: one float score per text, (N,) on the scorer's device, and (N,) bool:
        the text was longer than ``max_length`` and lost the start of its prompt. Texts are cut
        from the left (:func:`cai.train.score.keep_end`): the head reads the last token, so the
        response must stay."""
        from cai.models.padding import pad_rows
        from cai.train.score import keep_end

        special = not self.tokenizer.chat_template  # a chat template already writes BOS where it wants it
        fitted = [keep_end(ids, self.max_length, self.tokenizer.bos_token_id)
                  for ids in self.tokenizer(texts, add_special_tokens=special)["input_ids"]]
        scores = []
        for i in range(0, len(fitted), batch_size):
            ids, mask = pad_rows([f[0] for f in fitted[i : i + batch_size]], self.tokenizer.pad_token_id, "right")
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            scores.append(logits[:, 0].float())
        return torch.cat(scores), torch.tensor([f[1] for f in fitted], device=self.device)
