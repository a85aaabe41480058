"""Training on preference data: reward model (soft labels), PPO with a KL penalty, SFT and DPO.

Heavy imports (torch, transformers, TRL) happen inside the functions, so ``import cai.train`` is cheap.

Imports: core, models, principles, data, backends, judge, sl, feedback and humans.
"""

from cai.core.errors import quiet_trl_vllm_range

quiet_trl_vllm_range(say=False)  # TRL's vLLM-range warning, five times a run: filtered before TRL loads
