"""Training on preference data: reward model (soft labels), PPO with a KL penalty, SFT and DPO.

Heavy imports (torch, transformers, TRL) happen inside the functions, so ``import cai.train`` is cheap.

Imports: core, models, principles, data, backends, judge, sl, feedback and humans.
"""
