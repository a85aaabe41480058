"""The loop report's page: its Jinja template (autoescaped), style and number filters.
:mod:`cai.loop.report` gathers what it shows."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape

from cai.evals.report import _STYLE
from cai.loop.figures import finite


def _num_filter(x: Any, digits: int = 3) -> str:
    if isinstance(x, str):
        return x
    x = finite(x)
    if x is None:
        return "n/a"
    return str(x) if isinstance(x, int) else f"{x:.{digits}f}"


def _est(rate: dict | None, digits: int = 3) -> str:
    """A rate dict with its interval and n (cai.core.rates.estimate_text: "too few to estimate"
    below its MIN_N, never a zero-width interval)."""
    from cai.core.rates import estimate_text

    return estimate_text(rate, digits=digits) if rate else "n/a"


def _pct(x: Any) -> str:
    x = finite(x)
    return "n/a" if x is None else f"{x:.1%}"


_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
def _rate(x: Any, n: Any, of: str = "pairs") -> str:
    """A rate with its n and 95% interval (cai.core.rates.rate_text)."""
    from cai.core.rates import rate_text

    x, n = finite(x), finite(n)
    return rate_text(x, int(n), of=of) if x is not None and n else _pct(x)


_ENV.filters.update(num=_num_filter, est=_est, pct=_pct, rate=_rate)

LOOP_STYLE = _STYLE + """
.note{background:#fff6e0;border-left:3px solid #e0a000;padding:.3em .6em;margin:.3em 0}
.notrun{color:#888;font-style:italic} section.round{border-top:2px solid #ccc;margin-top:2em}
.plots{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}
dl.glance{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dl.glance dt{font-weight:600}
.verdict{padding:.4em .7em;margin:.4em 0;border-left:4px solid #888;background:#f4f4f4}
.verdict.bad{border-color:#c0392b;background:#fdecea} .verdict.warn{border-color:#e0a000;background:#fff6e0}
.verdict.ok{border-color:#2e8b57;background:#eef8f1} .untrusted{color:#c0392b;font-weight:600}
.judge-health{margin:.6em 0;padding:.3em .7em;border:1px solid #ddd} .judge-health.bad{border-color:#c0392b}
.judge-health.warn{border-color:#e0a000}
"""

PAGE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cai loop report</title>
<style>{{ style }}</style></head><body>
<h1>The constitutional loop at a glance</h1>
<p class="meta">run: <code>{{ run }}</code> · {{ rounds|length }} round{{ "s" if rounds|length > 1 }} · cai {{ version }}</p>
{% for n in plot_notes %}<p class="note">{{ n }}</p>{% endfor %}
{% set last = rounds[-1] %}{% set f = last.figures %}{% set t = last.trust %}
<h2 id="trust">Can these numbers be trusted?{% if rounds|length > 1 %} (round {{ last.index }}){% endif %}</h2>
{% for v in t["items"] %}<p class="verdict {{ v.level }}">{{ v.text }}</p>{% else %}<p class="meta">No stage of this run checked the judge or the reward model.</p>{% endfor %}
{% if t.labeler %}{% for where, h in t.labeler.health %}{{ h.html("AI labeler " ~ where)|safe }}{% endfor %}{% endif %}
<h2 id="glance">At a glance{% if rounds|length > 1 %} (round {{ last.index }}){% endif %}</h2>
<dl class="glance">
<dt>pairs in the mix</dt><dd>{% for s in last.sources %}{{ s.source }} {{ ((s.train or 0) + (s.test or 0)) if s.train is not none or s.test is not none else "n/a" }}{{ " · " if not loop.last }}{% else %}n/a{% endfor %}</dd>
<dt>AI labeler vs humans</dt><dd>{% if t.labeler and t.labeler.trusted is false %}<span class="untrusted">not to be trusted</span> (see above);
{% endif %}{% if last.agreement %}accuracy {{ last.agreement.accuracy|rate(last.agreement.n) }}{% else %}<span class="notrun">no human labels</span>{% endif %}</dd>
<dt>reward model</dt><dd>{% if t.reward and t.reward.audit and t.reward.audit.status in ("fails", "doubtful") %}<span class="untrusted">audit {{ t.reward.audit.status }}</span>: {{ t.reward.audit.text }};
{% endif %}held-out accuracy {{ f.reward_model_accuracy|rate(f.reward_model_n) }}{% if t.reward and t.reward.audit and t.reward.audit.status not in ("fails", "doubtful") %}; audit {{ t.reward.audit.status }}{% endif %}</dd>
<dt>policy training</dt><dd>
{%- if t.online %}{{ t.online.text }}{% elif f.ppo %}{{ last.trainer }}, {{ f.ppo.steps|num }} steps: reward {{ f.ppo.reward_start|num }} → {{ f.ppo.reward_end|num }}, KL {{ f.ppo.kl_start|num }} → {{ f.ppo.kl_end|num }}
{%- if last.trainer == "PPO" and t.reward and t.reward.audit and t.reward.audit.status in ("fails", "doubtful") %} (<span class="untrusted">the score of a reward model whose audit {{ t.reward.audit.status }}</span>: not evidence of a better policy){% endif %}{% endif %}
{%- if last.dpo %}{{ "; " if f.ppo }}DPO, {{ last.dpo.steps|num }} steps, final loss {{ last.dpo.final_loss|num }}{% endif %}
{%- if not f.ppo and not last.dpo %}n/a{% endif %}</dd>
<dt>behaviour, before → after</dt><dd>{% for r in (last.behavior or {}).get("rows", []) %}{{ r.suite }} {{ r.before.value|num if r.before else "n/a" }} → {{ r.after.value|num if r.after else "n/a" }}
({% if r.better %}{{ r.better }} is better; {% endif %}{{ r.change or "no baseline" }}{% if r.after and r.after.n %}, n={{ r.after.n|num }}{% endif %}){{ " · " if not loop.last }}{% else %}n/a{% endfor %}</dd>
</dl>
{% if rounds|length > 1 %}<h2 id="rounds">Behaviour per round</h2>
<table id="per-round"><tr><th>suite</th><th>before (round 1's starting policy)</th>{% for r in rounds %}<th>after round {{ r.index }}</th>{% endfor %}</tr>
{% for suite in suites %}<tr><td>{{ suite }}</td><td class="num">{{ before[suite]|est }}</td>
{% for r in rounds %}<td class="num">{{ per_round[r.index][suite]|est }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="meta">Each cell: the suite's rate [95% interval] (n) for the policy trained in that round.</p>{% endif %}
{% if rounds|selectattr("redteam")|list %}<h2 id="redteam">Red team per round</h2>
<table id="redteam-per-round"><tr><th>round</th><th>attacks</th><th>attack success [95% CI] (n)</th><th>decided by</th></tr>
{% for r in rounds %}{% if r.redteam %}<tr><td>{{ r.index }}</td><td class="num">{{ r.redteam.attacks|num }}</td><td class="num">{{ r.redteam.success|est }}</td>
<td>{{ r.redteam.decided_by }}</td></tr>{% endif %}{% endfor %}</table>
{% for r in rounds %}{% if r.redteam %}{% for w in r.redteam.warnings %}<p class="verdict warn">round {{ r.index }}: {{ w }}</p>{% endfor %}{% endif %}{% endfor %}
<p class="meta">Attacks written per principle by the attacker against each round's trained policy; those that broke it join the next round's prompts.</p>{% endif %}
{% for r in rounds %}<section class="round" id="round-{{ r.index }}">
{% if rounds|length > 1 %}<h2>Round {{ r.index }} <span class="meta"><code>{{ r.folder }}</code></span></h2>{% endif %}
{% for n in r.notes %}<p class="note">{{ n }}</p>{% endfor %}

<h3>Stages</h3>
<table id="stages-{{ r.index }}" class="stages"><tr><th>stage</th><th>status</th><th>seconds</th></tr>
{% for s in r.stages %}<tr><td>{{ s.stage }}</td><td{% if s.status == "not run" %} class="notrun"{% endif %}>{{ s.status }}</td>
<td class="num">{{ s.seconds|num(1) if s.status != "not run" }}</td></tr>{% endfor %}
<tr><th>total</th><th></th><th class="num">{{ r.total_seconds|num(1) }}</th></tr></table>

<h3>Data</h3>
{% if r.sources %}<table id="sources-{{ r.index }}" class="sources"><tr><th>source</th><th>read</th><th>duplicates</th><th>conflicting</th><th>capped</th>
<th>replaced by human</th><th>train</th><th>test</th><th>weight</th></tr>
{% for s in r.sources %}<tr><td>{{ s.source }}{% if s.human and s.source != "human" %} (human labels){% endif %}</td><td class="num">{{ s.read|num }}</td>
<td class="num">{{ s.duplicates|num }}</td><td class="num">{{ s.conflicting_duplicates|num }}</td><td class="num">{{ s.capped|num }}</td>
<td class="num">{{ s.replaced_by_human|num }}</td><td class="num">{{ s.train|num }}</td><td class="num">{{ s.test|num }}</td>
<td class="num">{{ s.weight|num(2) if s.weight is not none else "1" }}</td></tr>{% endfor %}
<tr><th>all</th><th></th><th></th><th></th><th></th><th></th><th class="num">{{ r.mix.train|num }}</th><th class="num">{{ r.mix.test|num }}</th><th></th></tr></table>
<p class="meta">human policy: {{ r.mix.human_policy }} · invalid rows: {{ r.mix.invalid|num }} · dropped for an empty response: {{ r.mix.empty|num }}</p>
{% for n in r.mix.notes %}<p class="meta">{{ n }}</p>{% endfor %}{% else %}<p class="notrun">no mix</p>{% endif %}
<div class="plots">{% for title, svg in plots[(r.index, "sources")] %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}</div>
<table id="upstream-{{ r.index }}" class="upstream"><tr><th>stage</th><th>what it made</th></tr>
<tr><td>generate (SL-CAI)</td><td>{% if r.generate %}{{ r.generate.records|num }} records: {{ r.generate.ok|num }} ok, {{ r.generate.revised|num }} revised, {{ r.generate.failed|num }} failed (failures: {{ r.generate.failures }});
{{ r.generate.sft_rows|num }} SFT rows, {{ r.generate.revision_pairs|num }} revision pairs{% if r.generate.verify %};
judge: {{ r.generate.verify.better|num }} of {{ r.generate.verify.judged|num }} revisions better than their drafts ({{ r.generate.verify.rate }}), {{ r.generate.verify.not_better|num }} kept out (min_p {{ r.generate.verify.min_p }}){% endif %}{% else %}n/a{% endif %}</td></tr>
<tr><td>sample</td><td>{% if r.sample %}{{ r.sample.prompts|num }} prompts, {{ r.sample.samples|num }} samples, {{ r.sample.pairs|num }} pairs ({{ r.sample.prompts_without_pairs|num }} prompts without a pair){% else %}n/a{% endif %}</td></tr>
<tr><td>label (AI feedback)</td><td>{% if r.label %}{{ r.label.pairs|num }} pairs labeled, mean |p − 0.5| {{ r.label.mean_margin|num }}, position consistency {{ r.label.position_consistency|rate(r.label.position_checked) }}{% else %}n/a{% endif %}</td></tr>
<tr><td>route</td><td>{% if r.route %}{{ r.route.selected|num }} of {{ r.route.eligible|num }} eligible pairs sent to people{% elif not r.ran.route %}<span class="notrun">not run</span>{% else %}n/a{% endif %}</td></tr>
<tr><td>humans</td><td>{% if r.ran.humans %}{{ r.figures.human_pairs|num }} human pairs imported{% else %}<span class="notrun">not run</span>{% endif %}</td></tr>
</table>

<h3>Labeler agreement with people</h3>
{% if r.agreement %}<table id="agreement-{{ r.index }}" class="agreement"><tr><th>pairs</th><th>accuracy</th><th>ECE</th><th>position consistency</th><th>ties</th><th>missing from the AI labels</th></tr>
<tr><td class="num">{{ r.agreement.n|num }}</td><td class="num">{{ r.agreement.accuracy|rate(r.agreement.n) }}</td><td class="num">{{ r.agreement.ece|num }}</td>
<td class="num">{{ r.agreement.position_consistency|pct }}</td><td class="num">{{ r.agreement.ties|num }}</td><td class="num">{{ r.agreement.missing|num }}</td></tr></table>
<p class="meta">The AI labeler is right when it gives the human's pick a probability above 0.5, however slightly; ECE: expected calibration error of its confidence.
{% if r.trust.labeler and r.trust.labeler.trusted is false %}<span class="untrusted">Not to be trusted</span>: see the top of the page.{% endif %}</p>
{% elif r.ran.humans %}<p class="notrun">no agreement report: humans/agreement.json is missing</p>{% else %}<p class="notrun">not run: no human labels in this round</p>{% endif %}
{% if r.overlap and r.overlap.overlap %}<p>In the mix, {{ r.overlap.overlap|num }} AI-labeled pairs also have a human label: {{ r.overlap.agree|num }} agree,
{{ r.overlap.disagree|num }} disagree, {{ r.overlap["human-tie"]|num }} human-only ties, {{ r.overlap["ai-tie"]|num }} AI-only ties.</p>{% endif %}

<h3>Reward model</h3>
{% if r.reward %}<p class="meta">{{ r.reward.train_pairs|num }} training pairs, {{ r.reward.test_pairs|num }} held out · {{ r.reward.steps|num }} steps · final loss {{ r.reward.final_loss|num }}</p>{% endif %}
{% if r.reward_eval %}<table id="reward-eval-{{ r.index }}" class="reward-eval"><tr><th>held-out pairs</th><th>n</th><th>accuracy</th><th>ECE</th><th>ECE vs soft labels</th><th>loss</th><th>mean margin</th></tr>
{% for g in r.reward_eval %}<tr><td>{{ g.group }}</td><td class="num">{{ g.n|num }}</td><td class="num">{{ g.accuracy|pct }}</td><td class="num">{{ g.ece|num }}</td>
<td class="num">{{ g.ece_soft|num }}</td><td class="num">{{ g.loss|num }}</td><td class="num">{{ g.margin|num }}</td></tr>{% endfor %}</table>
{% elif r.reward %}<p>No held-out evaluation: the mix has no test pairs.</p>{% endif %}
{% if r.trust.reward %}<p class="verdict {{ r.trust.reward.level }}">{{ r.trust.reward.text }}</p>{% endif %}
<h4>Audit on controlled pairs</h4>
{% if r.audit %}<table id="audit-{{ r.index }}" class="audit"><tr><th>bias</th><th>pairs</th><th>prefers worse [95% CI]</th><th>mean margin [95% CI]</th></tr>
{% for b in r.audit.biases %}<tr><td>{{ b.bias }}</td><td class="num">{{ b.n|num }}</td><td class="num">{{ b.prefers_worse|est }}</td><td class="num">{{ b.mean_margin|est }}</td></tr>{% endfor %}</table>
<p>Length–reward correlation over {{ r.audit.n|num }} responses: Pearson {{ r.audit.pearson|num }}, Spearman {{ r.audit.spearman|num }}.
{% if r.links.audit %}<a href="{{ r.links.audit }}">Full audit</a>{% endif %}</p>
<div class="plots">{% for title, svg in plots[(r.index, "audit")] %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}</div>
{% elif not r.ran.reward %}<p class="notrun">no audit: this round trains no reward model</p>{% else %}<p class="notrun">no audit: eval/reward-model/summary.json is missing</p>{% endif %}

<h3>Policy training</h3>
{% if r.sft %}<p>SFT on the revisions: {{ r.sft.train_rows|num }} rows, {{ r.sft.steps|num }} steps, final loss {{ r.sft.final_loss|num }}.</p>
{% elif not r.ran.sft %}<p class="notrun">SFT: not run</p>{% endif %}
{% if r.figures.ppo %}{% set p = r.figures.ppo %}<table id="ppo-{{ r.index }}" class="ppo"><tr><th>{{ r.trainer }} ({{ p.steps|num }} steps)</th><th>start</th><th>end</th></tr>
<tr><td>{{ "reward (reward-model score)" if r.trainer == "PPO" else "reward (weighted sum of its reward sources)" }}</td><td class="num">{{ p.reward_start|num }}</td><td class="num">{{ p.reward_end|num }}</td></tr>
<tr><td>KL to the reference</td><td class="num">{{ p.kl_start|num }}</td><td class="num">{{ p.kl_end|num }}</td></tr></table>
<p class="meta">{% if p.window > 1 %}Start and end: means over the first and last {{ p.window }} steps.{% else %}Start and end: the first and the last step.{% endif %}</p>
{% if r.trust.online %}<table id="reward-sources-{{ r.index }}" class="reward-sources"><tr><th>reward source</th><th>weight</th><th>start</th><th>end</th><th>weighted change</th></tr>
{% for s in r.trust.online.sources %}<tr><td>{{ s.source }}</td><td class="num">{{ s.weight|num(2) }}</td><td class="num">{{ s.start|num }}</td><td class="num">{{ s.end|num }}</td><td class="num">{{ s.weighted_change|num }}</td></tr>{% endfor %}</table>
{% for w in r.trust.online.warnings %}<p class="verdict bad">{{ w }}</p>{% endfor %}{% endif %}
<div class="plots">{% for title, svg in plots[(r.index, "ppo")] %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}</div>
{% endif %}
{% if r.dpo %}<table id="dpo-{{ r.index }}" class="dpo"><tr><th>DPO</th><th></th></tr>
<tr><td>loss</td><td>{{ r.dpo.loss_type }} (β {{ r.dpo.beta|num }})</td></tr><tr><td>pairs</td><td>{{ r.dpo.train_pairs|num }} train, {{ r.dpo.test_pairs|num }} held out</td></tr>
<tr><td>steps</td><td class="num">{{ r.dpo.steps|num }}</td></tr><tr><td>final loss</td><td class="num">{{ r.dpo.final_loss|num }}</td></tr>
{% for k, v in r.dpo.eval %}<tr><td>held-out {{ k }}</td><td class="num">{{ v|num }}</td></tr>{% endfor %}</table>
{% endif %}{% if not r.figures.ppo and not r.dpo %}<p class="notrun">no trained policy: ppo/metrics.jsonl (or grpo/, rloo/ metrics.jsonl, dpo/summary.json) is missing</p>{% endif %}

<h3>Behaviour before and after</h3>
{% if r.behavior %}<p class="meta">before: <code>{{ r.behavior.baseline or "n/a" }}</code> · after: <code>{{ r.behavior.candidate or "n/a" }}</code>
· judge: <code>{{ r.behavior.judge or "none (detector only)" }}</code>{% if r.links.behavior %} · <a href="{{ r.links.behavior }}">full evaluation</a>{% endif %}</p>
<table id="behavior-{{ r.index }}" class="behavior"><tr><th>suite</th><th>metric</th><th>probes</th><th>before [95% CI]</th><th>after [95% CI]</th>
<th>after − before [95% CI]</th><th>change</th><th>win rate [95% CI]</th></tr>
{% for b in r.behavior.rows %}<tr><td>{{ b.suite }}{% if b.version %}@{{ b.version }}{% endif %}</td>
<td>{{ b.metric }}{% if b.better %} ({{ b.better }} is better){% endif %}</td><td class="num">{{ b.probes|num }}</td>
<td class="num">{{ b.before|est }}</td><td class="num">{{ b.after|est }}</td><td class="num">{{ b.diff|est }}</td><td>{{ b.change or "–" }}</td><td class="num">{{ b.win_rate|est }}</td></tr>{% endfor %}</table>
{% for w in r.trust.behavior %}<p class="verdict warn">{{ w }}</p>{% endfor %}
<div class="plots">{% for title, svg in plots[(r.index, "behavior")] %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}</div>
{% else %}<p class="notrun">no evaluation: eval/behavior/summary.json is missing</p>{% endif %}
</section>{% endfor %}
</body></html>
""")
