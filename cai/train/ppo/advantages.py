"""Advantages: masked statistics, whitening and generalised advantage estimation (GAE).

Every tensor here is ``(B, T)`` over response tokens with a ``mask`` of the same shape (1 for a
real token, 0 after the end of the response). Masked positions never contribute to a statistic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ReduceSum = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor elementwise over all processes (identity in a single process)."""


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (over all of them, or along ``dim``)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over masked-in positions (Bessel-corrected by default)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_moments(x: torch.Tensor, mask: torch.Tensor, reduce_sum: ReduceSum | None = None,
                   unbiased: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``x`` over masked-in positions; with ``reduce_sum`` (a function that
    sums a tensor over every process, e.g. ``lambda t: accelerator.reduce(t, "sum")``) over the
    positions of all processes together, as one process holding the whole batch would get them.

    Two passes (the mean first, then squared deviations from it), each one all-reduce.
    """
    if reduce_sum is None:
        return masked_mean(x, mask), masked_var(x, mask, unbiased)
    total, n = reduce_sum(torch.stack([(x * mask).sum(), mask.sum().to(x.dtype)]))
    mean = total / n.clamp(min=1)
    var = reduce_sum(((x - mean) ** 2 * mask).sum()) / n.clamp(min=1)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return mean, var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  reduce_sum: ReduceSum | None = None) -> torch.Tensor:
    """``(x − mean) / std`` over masked-in positions; ``shift_mean=False`` keeps the mean (scales only).

    Masked-out positions are set to 0 so they cannot leak into later sums. With ``reduce_sum`` the
    mean and std are those of every process's tokens (see :func:`masked_moments`): without it,
    each process would whiten its own share of the batch by its own statistics.
    """
    mean, var = masked_moments(x, mask, reduce_sum)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    rewards, values, mask: (B, T). The episode ends at the last real token, whose successor value
    is 0 (no bootstrap). Returns ``(advantages, returns)``, both (B, T), with
    ``returns = advantages + values`` as the value function's regression target.

        δ_t = r_t + γ V_{t+1} − V_t          A_t = δ_t + γ λ A_{t+1}
    """
    rewards, values = rewards * mask, values * mask
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)  # A_{t+1}   (B,)
    next_value = torch.zeros_like(next_adv)                                 # V_{t+1}   (B,)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * mask
