"""Principles from preference data: test principles against what people chose, and propose the
ones that explain their choices (inverse CAI; Findeis et al. 2024, *Inverse Constitutional AI:
Compressing Preferences into Principles*, and its sequel Feedback Forensics).

- :func:`run_principle_test` (``cai principles test --pairs``, :mod:`cai.inverse.tester`): each
  principle votes on each pair through the one judge; relevance, accuracy and strength with
  bootstrap intervals, overlaps and contradictions, all of them together against the
  no-principle judge; JSON and an HTML page.
- :func:`run_propose` (``cai principles propose``, :mod:`cai.inverse.proposer`): proposals per
  pair, clustered, tested, selected greedily by the accuracy of the set, scored on held-out pairs,
  written as principle files and a constitution.

Modules: :mod:`.votes` (the one vote step, and the resumable vote store), :mod:`.report` (the
numbers of a test), :mod:`.proposals` (proposal prompts and parsing), :mod:`.cluster` (TF-IDF or
embedding clustering), :mod:`.select` (greedy set selection), :mod:`.writing` (principle files
and the constitution), :mod:`.page` (HTML with SVG plots), :mod:`.synthetic` (pairs that follow
hidden rules, and a scripted model that knows them), :mod:`.config`. The measures themselves are
in :mod:`cai.feedback.forensics`, which `cai eval agreement` shares.

Imports: core, models, principles, data, backends, judge, sl and feedback.
"""

from cai.inverse.config import PrincipleTestConfig, ProposeConfig
from cai.inverse.proposer import run_propose
from cai.inverse.tester import run_principle_test

__all__ = ["PrincipleTestConfig", "ProposeConfig", "run_principle_test", "run_propose"]
