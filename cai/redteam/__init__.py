"""Automated red-teaming from a constitution: an attacker model writes attacks on each principle,
the target answers, the judge decides which answers break the principle, and what broke the
target becomes a probe suite (`cai eval behavior --suites OUT/suite.yaml`, and the loop's next round).

Source: Perez et al. 2022, "Red Teaming Language Models with Language Models".

    from cai.redteam import RedteamConfig, run_redteam
    summary = run_redteam(RedteamConfig(out="runs/rt", attacker={"model": "smollm2-135m-instruct"},
                                        target={"model": "smollm2-135m-instruct"}, per_principle=5))
    summary["by_principle"], summary["by_style"], summary["judge_health"]

Imports: core, models, principles, data, backends, judge, sl, evals.
"""

from cai.redteam.attacks import Attack, attacker_prompt, drop_near_duplicates, parse_attack, similarity
from cai.redteam.config import STYLES, RedteamConfig
from cai.redteam.run import run_redteam, write_suite

__all__ = ["STYLES", "Attack", "RedteamConfig", "attacker_prompt", "drop_near_duplicates", "parse_attack",
           "run_redteam", "similarity", "write_suite"]
