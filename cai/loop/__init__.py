"""`cai run`: the whole constitutional loop from one recipe (generate → sft → sample → label →
route/humans → mix → reward → ppo or dpo → eval → report), resumable stage by stage.

Imports: every room but :mod:`cai.cli` (the loop calls each stage's library function).
"""
