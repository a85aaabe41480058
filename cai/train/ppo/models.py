"""The three models of PPO: the policy with its value head, the frozen reference and the reward model.

The value function is a linear head on the policy's last hidden state (shared trunk), as in
Ziegler et al. (2019) and OpenAI's lm-human-preferences. One forward pass gives both the token
logits and the values, and the whole wrapper is one ``nn.Module``, so ``accelerate``/DDP syncs
the head's gradients with the policy's. (TRL used a separate value model initialised from the
reward model; a shared trunk costs one model fewer in memory at the price of the value loss
also shaping the policy's features, which ``vf_coef`` weighs.)
"""

from __future__ import annotations

import torch
from torch import nn

from cai.core.errors import CaiError


class PolicyWithValueHead(nn.Module):
    """A causal LM plus ``value_head: Linear(hidden, 1)`` on its last hidden state."""

    def __init__(self, policy: nn.Module, init_std: float = 0.0):
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        nn.init.normal_(self.value_head.weight, std=init_std) if init_std > 0 else nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_start: int):
        """Logits and values at the positions that predict the response tokens.

        input_ids, attention_mask: (B, L) = left-padded prompt (length ``response_start``) + response.
        Returns ``logits (B, T, V)`` and ``values (B, T)`` with T = L − response_start: entry t is
        computed from the prefix before response token t.
        """
        backbone = getattr(self.policy, self.policy.base_model_prefix)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).last_hidden_state            # (B, L, H)
        hidden = hidden[:, response_start - 1 : -1]                     # (B, T, H)
        logits = self.policy.get_output_embeddings()(hidden)            # (B, T, V)
        values = self.value_head(hidden.float()).squeeze(-1)            # (B, T)
        return logits, values


def forward_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_start: int) -> torch.Tensor:
    """Logits of a plain causal LM (the reference) at the positions that predict the response."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                logits_to_keep=input_ids.shape[1] - response_start + 1)
    return out.logits[:, :-1]                                           # (B, T, V)


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(path: str, dtype: str = "float32"):
    """A causal LM in eval mode (dropout off: PPO's ratios must compare like with like)."""
    from transformers import AutoModelForCausalLM

    from cai.models import resolve_model

    path = resolve_model(path)  # a known name or a .gguf file becomes its local folder
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_DTYPES[dtype])
    except (OSError, ValueError) as exc:
        raise CaiError(f"cannot load the policy model '{path}': {str(exc).splitlines()[0]}") from None
    return model.eval()


def load_tokenizer(path: str, padding_side: str):
    from transformers import AutoTokenizer

    from cai.models import resolve_model

    path = resolve_model(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CaiError(f"cannot load the tokenizer of '{path}': {str(exc).splitlines()[0]}") from None
    from cai.models.padding import align_pad_id

    tok.padding_side = padding_side
    align_pad_id(tok, name=path)
    return tok


def stop_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a response: the tokenizer's EOS and the model's generation-config EOS ids."""
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise CaiError("the policy has no EOS token: responses could never end")
    return sorted(ids)
