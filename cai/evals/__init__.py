"""Behaviour evaluation: probe suites, a refusal detector, a judge through ``score_choices``,
rates with bootstrap intervals, a reward-model audit and a self-contained HTML report.

``cai eval behavior`` and ``cai eval reward-model`` are the commands; ``cai principles test``
checks whether a judge model can apply each principle to its own examples.

Imports: every room below it (core, models, principles, data, backends, judge, sl, feedback, train).
"""
