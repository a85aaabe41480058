"""Fixed batches and the code under test for the two-process training checks.

Each function runs one process's share (rows ``rank::world`` of a batch built the same way in every
process) through the project's code and returns plain JSON; with ``world == 1`` it is the single
process holding the whole batch that the shares are compared against.
"""

from __future__ import annotations

import types

import torch
from torch import nn

B, T, P, V, H = 8, 5, 3, 11, 8
LENGTHS = [1, 5, 2, 5, 3, 1, 4, 5]  # response lengths: shares and micro-batches hold unequal token counts


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = (torch.arange(T)[None] < torch.tensor(LENGTHS)[:, None]).float()        # (B, T)
    return {
        "query": torch.randint(0, V, (B, P), generator=g),                           # (B, P)
        "response": torch.randint(0, V, (B, T), generator=g),                        # (B, T)
        "mask": mask,
        "x": (torch.randn(B, T, generator=g) * 3 + torch.arange(B)[:, None]) * mask,  # shares differ in mean
        "advantages": torch.randn(B, T, generator=g) * mask,
        "returns": torch.randn(B, T, generator=g) * mask,
        "logprob_noise": torch.randn(B, T, generator=g) * 0.1,
        "old_values": torch.randn(B, T, generator=g) * 0.1,
    }


def share(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    return t[rank::world]


def whiten_share(rank: int, world: int, reduce_sum) -> dict:
    """Whitened rewards-like values of this share: ``{row: [values]}`` (masked positions are 0)."""
    from cai.train.ppo.advantages import masked_whiten

    b = batch()
    rows = list(range(B))[rank::world]
    out = masked_whiten(share(b["x"], rank, world), share(b["mask"], rank, world),
                        reduce_sum=reduce_sum if world > 1 else None)
    return {str(r): v for r, v in zip(rows, out.tolist())}


class ToyPolicyValue(nn.Module):
    """Logits and values for the response positions, like ``PolicyWithValueHead`` (same call)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.emb = nn.Embedding(V, H)
        self.head = nn.Linear(H, V)
        self.value = nn.Linear(H, 1)

    def forward(self, input_ids, attention_mask, prompt_len):
        h = torch.tanh(self.emb(input_ids))[:, prompt_len - 1 : -1]  # states before each response token (B, T, H)
        return self.head(h), self.value(h).squeeze(-1)               # (B, T, V), (B, T)


def ppo_update(acc, rank: int, world: int) -> dict:
    """One optimizer step of ``PPOTrainer._update`` (2 micro-batches of accumulation) on this share;
    returns the parameters after it (equal on every process)."""
    from cai.train.ppo.losses import logprobs_and_entropy
    from cai.train.ppo.trainer import PPOTrainer

    b = {k: share(v, rank, world) for k, v in batch().items()}
    model = ToyPolicyValue()
    input_ids = torch.cat([b["query"], b["response"]], 1)
    with torch.no_grad():
        logits, _ = model(input_ids, torch.ones_like(input_ids), P)
        old_logprobs, _ = logprobs_and_entropy(logits, b["response"], entropy=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model, optimizer = acc.prepare(model, optimizer)
    local = B // world
    cfg = types.SimpleNamespace(ppo_epochs=1, mini_batch_size=local, gradient_accumulation_steps=2, seed=0,
                                temperature=1.0, cliprange=0.2, cliprange_value=0.2, vf_coef=0.5,
                                entropy_coef=0.01, max_grad_norm=None)
    ro = types.SimpleNamespace(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), query=b["query"],
                               response=b["response"], mask=b["mask"], logprobs=old_logprobs + b["logprob_noise"],
                               values=b["old_values"])
    trainer = types.SimpleNamespace(cfg=cfg, acc=acc, model=model, optimizer=optimizer)
    trainer._sum = types.MethodType(PPOTrainer._sum, trainer)
    stats = PPOTrainer._update(trainer, 1, ro, b["advantages"], b["returns"])
    params = torch.cat([p.detach().flatten() for p in acc.unwrap_model(model).parameters()])
    return {"params": params.tolist(), "stats": stats}


PAIRS = [  # (prompt, chosen, rejected, p_chosen, source): 7 pairs, so two shards differ in size
    ("How do I fix a bike?", "Check the chain first.", "No idea.", 0.9, "human"),
    ("Tell me a joke.", "Why did the bike fall over? It was two tired.", "No.", 0.7, "ai-feedback"),
    ("Is it safe to eat raw eggs?", "There is a small risk of salmonella.", "Yes, always.", 0.8, "human"),
    ("Write a poem.", "Roses are red.", "I will not write anything for you today.", 0.4, "ai-feedback"),
    ("What is two plus two?", "Four.", "Five, obviously, as everyone knows.", 1.0, "human"),
    ("Help me hide a body.", "I can't help with that.", "Sure, here is how.", 0.95, "ai-feedback"),
    ("Summarize this: the cat sat.", "A cat sat.", "The dog ran far away from home.", 0.6, "human"),
]


def preference_pairs():
    from cai.data.pairs import PreferencePair

    return [PreferencePair(prompt=[{"role": "user", "content": q}], chosen=[{"role": "assistant", "content": c}],
                           rejected=[{"role": "assistant", "content": r}], p_chosen=p, source=s)
            for q, c, r, p, s in PAIRS]


def reward_eval(acc, model_dir: str) -> dict:
    """Held-out metrics of the reward model in ``model_dir`` (DDP-wrapped when ``world > 1``), and
    how many sequences and forward passes this process ran."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cai.train.evaluate import evaluate_reward_model

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    model.register_forward_hook(lambda module, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                with_kwargs=True)
    model = acc.prepare(model)
    metrics = evaluate_reward_model(model, tokenizer, preference_pairs(), batch_size=2, bins=4, accelerator=acc)
    return {**metrics, "sequences_scored": sum(rows), "forward_passes": len(rows)}


WEIGHTS = [1.0, 0.2, 3.0, 0.5, 1.0, 2.0, 0.1, 1.5]  # unequal, so per-micro-batch means would differ


def reward_step(model_dir: str, out: str, world: int, batch_size: int, grad_accum: int) -> dict:
    """One optimizer step of the soft-label reward trainer over all 8 pairs (SGD, so the update is
    proportional to the gradient), in ``world`` processes x ``grad_accum`` micro-batches of
    ``batch_size`` pairs."""
    from trl import RewardConfig

    from cai.data.pairs import PreferencePair
    from cai.train.config import RewardRecipe, trl_config
    from cai.train.data import preference_dataset
    from cai.train.reward import SoftLabelRewardTrainer

    pairs = [PreferencePair(prompt=[{"role": "user", "content": q}], chosen=[{"role": "assistant", "content": c}],
                            rejected=[{"role": "assistant", "content": r}], p_chosen=p, source=s, weight=w)
             for (q, c, r, p, s), w in zip(PAIRS + PAIRS[:1], WEIGHTS)]
    recipe = RewardRecipe(model=model_dir, data="-", out=out, max_steps=1, batch_size=batch_size, grad_accum=grad_accum,
                          gradient_checkpointing=False, learning_rate=1.0, logging_steps=1,
                          trl={"optim": "sgd", "lr_scheduler_type": "constant", "max_grad_norm": 0.0,
                               "dataloader_drop_last": False})
    trainer = SoftLabelRewardTrainer(model=model_dir, args=trl_config(RewardConfig, recipe),
                                     train_dataset=preference_dataset(pairs))
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    loss = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"params_head": params[-200:].tolist(), "param_sum": float(params.double().sum()),
            "loss": loss[0] if loss else None, "processes": trainer.accelerator.num_processes,
            "sampled": len(list(trainer.get_train_dataloader()))}


GROUPS = [("write a poem", ["roses", "roses are red and violets blue", "ok"]),
          ("explain code", ["it loops", "it loops over the list and sums it", "no"]),
          ("help me", ["sure", "sure, here is how you can do it step by step", "hm"]),
          ("the rules", ["be kind", "be kind and honest with everyone", "x"])]


def online_rewards(rank: int, world: int) -> dict:
    """GRPO/RLOO rewards of this process's whole groups (groups ``rank::world``): the constitution
    judge (groupwise, a scripted judge whose choice depends on the texts) and the length guard,
    whose reference length is the mean over every process's first batch. ``{row: [judge, length]}``."""
    import hashlib

    from cai.backends.scripted import ScriptedBackend
    from cai.train.online.config import ConstitutionReward
    from cai.train.online.judge_link import open_judge
    from cai.train.online.judging import ConstitutionJudgeReward
    from cai.train.online.rewards import LengthGuard

    def score(prompt, labels):  # (A) is favoured by a hash of what is shown: orders and pairs differ
        h = int(hashlib.sha256(str(prompt).encode()).hexdigest()[:6], 16) / 0xFFFFFF
        return {labels[0]: 0.2 + 0.6 * h, labels[1]: 0.8 - 0.6 * h}

    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    judge = open_judge(ConstitutionReward(constitution=str(root / "constitution/default.yaml"), few_shot=0,
                                          mode="groupwise"), backend=ScriptedBackend.scripted(score=score))
    k = len(GROUPS[0][1])
    mine = list(range(len(GROUPS)))[rank::world]
    prompts = [[{"role": "user", "content": GROUPS[g][0]}] for g in mine for _ in range(k)]
    completions = [[{"role": "assistant", "content": t}] for g in mine for t in GROUPS[g][1]]
    ids = [list(range(len(c[0]["content"].split()))) for c in completions]
    judged = ConstitutionJudgeReward(judge, mode="groupwise", num_generations=k)(prompts, completions, ids)
    lengths = LengthGuard(ratio=1.0)(prompts, completions, ids)
    rows = [g * k + i for g in mine for i in range(k)]
    return {str(r): [j, n] for r, j, n in zip(rows, judged, lengths)}
