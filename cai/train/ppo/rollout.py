"""Rollouts: sample responses for a batch of prompts, then score them with every model.

One :class:`Rollout` holds everything the update needs, grouped by meaning, each with its shape
(B = prompts in the batch, P = left-padded prompt length, T = response length).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from cai.core.errors import CaiError
from cai.models.padding import pad_rows
from cai.train.ppo.data import render_prompt
from cai.train.ppo.losses import logprobs_and_entropy
from cai.train.ppo.models import forward_logits

log = logging.getLogger("cai.train.ppo")


@dataclass
class Rollout:
    query: torch.Tensor          # (B, P) prompt ids, left-padded
    query_mask: torch.Tensor     # (B, P) 1 for prompt tokens
    response: torch.Tensor       # (B, T) sampled ids, pad after the stop token
    mask: torch.Tensor           # (B, T) float, 1 up to and including the stop token
    logprobs: torch.Tensor       # (B, T) log π_old(token) at sampling temperature
    ref_logprobs: torch.Tensor   # (B, T) log π_ref(token)
    values: torch.Tensor         # (B, T) V_old(prefix before token)
    entropy: torch.Tensor        # (B, T) entropy of π_old at each position
    raw_scores: torch.Tensor     # (B,) reward-model scores
    ended: torch.Tensor          # (B,) bool: the response ended with a stop token
    texts: list[str]             # B decoded responses (without the stop token)
    reward_cut: torch.Tensor     # (B,) bool: the reward model's input was cut from the left to fit

    @property
    def input_ids(self) -> torch.Tensor:        # (B, P + T)
        return torch.cat([self.query, self.response], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:   # (B, P + T)
        return torch.cat([self.query_mask, torch.ones_like(self.response)], dim=1)

    @property
    def lengths(self) -> torch.Tensor:          # (B,) response tokens incl. the stop token
        return self.mask.sum(1).long()


def encode_prompts(tokenizer, prompts: list[list[dict]], max_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask (B, P); prompts longer than ``max_length`` lose their start."""
    rows = []
    for messages in prompts:
        text, special = render_prompt(tokenizer, messages)
        ids = tokenizer(text, add_special_tokens=special)["input_ids"]
        rows.append(ids[-max_length:])
    ids, mask = pad_rows(rows, tokenizer.pad_token_id, "left")
    return ids.to(device), mask.to(device)


def prompt_budget(model_config, max_prompt_length: int, max_new_tokens: int, model: str = "") -> int:
    """The most prompt tokens a rollout keeps: ``max_prompt_length``, or less when the policy's
    context (``max_position_embeddings``) cannot hold that many plus ``max_new_tokens`` (said once);
    a context that leaves no room for a prompt is a one-line error."""
    context = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(context, int) or context <= 0 or max_prompt_length + max_new_tokens <= context:
        return max_prompt_length
    budget = context - max_new_tokens
    if budget < 1:
        raise CaiError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the policy's context "
                       f"of {context} tokens; lower max_new_tokens", path=model or None)
    log.warning("prompts are cut from the left to %d tokens: the policy's context is %d tokens and "
                "max_new_tokens is %d (max_prompt_length %d would not fit)", budget, context, max_new_tokens,
                max_prompt_length)
    return budget


def truncate_at_stop(response: torch.Tensor, stop_ids: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each response after its first stop token.

    response: (B, T). Returns ``(response, mask, ended)``: tokens after the first stop token become
    ``pad_id``; mask (B, T) is 1 up to and including the stop token (everything when there is none);
    ended (B,) says whether a stop token was found.
    """
    is_stop = torch.isin(response, torch.tensor(stop_ids, device=response.device))
    T = response.shape[1]
    positions = torch.arange(T, device=response.device).expand_as(response)
    first = torch.where(is_stop, positions, torch.full_like(positions, T)).min(dim=1).values  # (B,)
    ended = first < T
    mask = (positions <= first.unsqueeze(1)).float()
    return torch.where(mask.bool(), response, torch.full_like(response, pad_id)), mask, ended


@torch.no_grad()
def generate(policy, query: torch.Tensor, query_mask: torch.Tensor, cfg, generation_config, seed: int) -> torch.Tensor:
    """Sampled response ids (B, T ≤ max_new_tokens) from ``policy.generate`` with a per-step seed."""
    torch.manual_seed(seed)
    out = policy.generate(input_ids=query, attention_mask=query_mask, generation_config=generation_config)
    return out[:, query.shape[1]:]


@torch.no_grad()
def score_rollout(model, ref_model, scorer, prompts, tokenizer, query, query_mask, response, stop_ids, cfg, autocast) -> Rollout:
    """Log-probabilities (policy and reference), values, entropies and reward-model scores."""
    response, mask, ended = truncate_at_stop(response, stop_ids, tokenizer.pad_token_id)
    P = query.shape[1]
    input_ids = torch.cat([query, response], 1)
    attention_mask = torch.cat([query_mask, torch.ones_like(response)], 1)
    chunk = cfg.rollout_batch_size or cfg.batch_size
    parts: dict[str, list[torch.Tensor]] = {"logprobs": [], "ref_logprobs": [], "values": [], "entropy": []}
    for i in range(0, query.shape[0], chunk):
        sl = slice(i, i + chunk)
        with autocast():
            logits, values = model(input_ids[sl], attention_mask[sl], P)
        logp, ent = logprobs_and_entropy(logits / cfg.temperature, response[sl])
        ref_logits = forward_logits(ref_model, input_ids[sl], attention_mask[sl], P)
        ref_logp, _ = logprobs_and_entropy(ref_logits / cfg.temperature, response[sl], entropy=False)
        parts["logprobs"].append(logp)
        parts["ref_logprobs"].append(ref_logp)
        parts["values"].append(values.float())
        parts["entropy"].append(ent)
    cat = {k: torch.cat(v) * mask for k, v in parts.items()}

    texts = []
    for row, m in zip(response, mask):
        keep = row[: int(m.sum())]
        keep = keep[~torch.isin(keep, torch.tensor(stop_ids, device=keep.device))]
        texts.append(tokenizer.decode(keep, skip_special_tokens=True))
    rendered = [scorer.render(messages, text) for messages, text in zip(prompts, texts)]
    raw_scores, cut = scorer.score(rendered, chunk)
    return Rollout(query=query, query_mask=query_mask, response=response, mask=mask,
                   raw_scores=raw_scores.to(query.device), ended=ended, texts=texts,
                   reward_cut=cut.to(query.device), **cat)
