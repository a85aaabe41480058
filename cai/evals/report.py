"""The HTML reports: one self-contained file each (inline CSS, plots as inline SVG drawn by
matplotlib, no scripts and no network assets), readable offline and attachable to a review.

``behavior_report``: the warnings and the eval judge's health first, then a table per suite
(rate with its 95% interval and n, the detector's and the judge's rates side by side, baseline,
difference and whether it is better or worse, win rate, agreements), plots of the rates and differences, and the worst examples with their
judgements. ``reward_report``: per-bias preference for the worse variant, reward-margin
histograms and reward against length.
"""

from __future__ import annotations

import io
import re

from jinja2 import Environment, select_autoescape

from cai.core.errors import MissingDependencyError
from cai.evals.rules import VERBOSE_RATIO


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "eval", "the evaluation report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "cai", "font.size": 9})
    return plt


def _svg(fig) -> str:
    """The figure as an inline ``<svg>`` (no XML prolog)."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _unique_ids(plots: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Prefix each SVG's element ids with its plot number: matplotlib names glyphs and clip paths
    the same in every figure, and ids must be unique in one page."""
    return [(title, re.sub(r'(id="|href="#|url\(#)', lambda m, k=k: f"{m.group(1)}p{k}-", svg))
            for k, (title, svg) in enumerate(plots)]


def _errors(rate: dict) -> tuple[float, float]:
    return rate["value"] - rate["ci"][0], rate["ci"][1] - rate["value"]


def _bars(ax, labels: list[str], series: list[tuple[str, list[dict | None]]]) -> None:
    width = 0.8 / len(series)
    for k, (name, rates) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, r in enumerate(rates):
            if r is None:
                continue
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            ys.append(r["value"])
            a, b = _errors(r)
            lo.append(a)
            hi.append(b)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(frameon=False)


def rate_plots(results: list[dict], names: tuple[str, str] = ("candidate", "baseline")) -> list[tuple[str, str]]:
    """``(title, svg)``: the suites' rates (shares and length ratios apart), with baseline bars and
    the candidate-minus-baseline differences and win rates when there is a baseline. ``names``:
    what the legends call the candidate and the baseline."""
    plt = _pyplot()
    plots = []
    for numeric, title in ((False, "Rates per suite (95% Wilson interval)"), (True, "Length ratio (response / reference words)")):
        rows = [r for r in results if r["numeric"] == numeric]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 2), 3.2))
        series = [(names[0], [r["candidate"]["rate"] for r in rows])]
        if any(r["baseline"] for r in rows):
            series.append((names[1], [(r["baseline"] or {}).get("rate") for r in rows]))
        _bars(ax, [f"{r['suite']}\n({r['metric']})" for r in rows], series)
        if not numeric:
            ax.set_ylim(0, 1.05)
        else:
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        plots.append((title, _svg(fig)))
    diffs = [r for r in results if r["diff"] and not r["numeric"]]  # shares only: one scale
    if diffs:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(diffs) + 2), 3.0))
        _bars(ax, [r["suite"] for r in diffs], [(f"{names[0]} - {names[1]}", [r["diff"] for r in diffs])])
        ax.axhline(0.0, color="black", lw=0.8)
        plots.append(("Difference to the baseline (95% interval)", _svg(fig)))
    wins = [r for r in results if r["win_rate"]]
    if wins:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(wins) + 2), 3.0))
        _bars(ax, [r["suite"] for r in wins], [(f"P({names[0]} better)", [r["win_rate"] for r in wins])])
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.05)
        plots.append(("Pairwise win rate judged by the constitution", _svg(fig)))
    return plots


def worst_examples(runs, suite: str, k: int) -> list:
    """The ``k`` most clearly failed runs of a suite (judge's probability first, then the detector;
    for verbosity the longest relative to the reference)."""
    mine = [r for r in runs if r.suite.name == suite and r.model == "candidate"]
    if mine and mine[0].kind == "verbosity":
        return sorted(mine, key=lambda r: -r.value)[:k]
    failed = [r for r in mine if r.fail]
    return sorted(failed, key=lambda r: -(r.judge["p_fail"] if r.judge else 1.0))[:k]


def _fmt(rate: dict | None) -> str:
    from cai.core.rates import estimate_text

    return estimate_text(rate) if rate else "–"


def behavior_warnings(summary: dict) -> list[str]:
    """What a reader must know beside the rates, one sentence each (terminal and HTML alike): the
    judge's health when it is weak or unhealthy, each suite whose headline fell back from the judge
    to the detector (and why), detector and judge disagreeing, and agreement with people's labels
    that is low or below XSTest's keyword baseline."""
    out = []
    health = summary.get("judge_health")
    if health and health.get("status") in ("weak", "unhealthy"):
        out.append(f"the eval judge is {health['status']}: " + "; ".join(health.get("reasons") or []))
    for r in summary.get("results", []):
        for side in ("candidate", "baseline"):
            s = r.get(side)
            if not s:
                continue
            who = f"{r['suite']} ({side})"
            if s.get("why"):
                out.append(f"{who}: the headline is the detector's, not the judge's: {s['why']}")
            dj = s.get("detector_judge")
            if dj and dj["value"] < 0.8:
                out.append(f"{who}: detector and judge agree on only {dj['value']:.0%} of {dj['n']} responses "
                           f"(detector {_fmt(s.get('detector_rate'))}, judge {_fmt(s.get('judge_rate'))})")
            for w in (s.get("human_agreement") or {}).get("warnings", []):
                out.append(f"{who}: {w}")
    return out


def _pct(value) -> str:
    return "–" if value is None else f"{value:.0%}"


_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters.update(fmt=_fmt, pct=_pct)

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure.plot{margin:1em 0} figure.plot svg{max-width:100%;height:auto}
.turn{white-space:pre-wrap;margin:.2em 0;padding:.3em .5em;border-radius:4px}
.user{background:#eef3fb} .assistant{background:#f3f3f3} .example{border:1px solid #ddd;padding:.6em;margin:.8em 0}
code{font-size:12px} .meta{color:#666;font-size:12px}
.note{background:#fff6e0;border-left:3px solid #e0a000;padding:.3em .6em;margin:.3em 0}
.note.warning,.judge-health.bad,.judge-health.warn{border-left:3px solid #c0392b;background:#fdecea;padding:.3em .6em}
"""

_BEHAVIOR = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cai behaviour evaluation</title>
<style>{{ style }}</style></head><body>
<h1>Behaviour evaluation</h1>
<p class="meta">candidate: <code>{{ s.candidate.model or s.candidate.responses }}</code>
{% if s.baseline %}· baseline: <code>{{ s.baseline.model or s.baseline.responses }}</code>{% endif %}
· judge: <code>{{ s.judge.model if s.judge else "none (detector only)" }}</code>
{% if s.constitution %}· constitution: <code>{{ s.constitution.ref }}</code>{% endif %}
· sampling: temperature {{ s.sampling.temperature }}, max_tokens {{ s.sampling.max_tokens }}, seed {{ s.sampling.seed }}
· cai {{ s.cai_version }}</p>
{% for w in warnings %}<p class="note warning">warning: {{ w }}</p>{% endfor %}
{% if health_html %}<h2 id="judge-health">Eval judge health</h2>{{ health_html|safe }}{% endif %}
<h2>Summary</h2>
<table id="summary"><tr><th>suite</th><th>metric</th><th>probes</th><th>candidate [95% CI] (n)</th><th>headline by</th>
{% if has_base %}<th>baseline</th><th>difference</th><th>change</th><th>win rate</th>{% endif %}
<th>detector</th><th>judge</th><th>detector–judge agreement</th></tr>
{% for r in s.results %}<tr><td>{{ r.suite }}@{{ r.version }}</td>
<td>{{ r.metric }} ({{ "higher" if r.higher_is_better else "lower" }} is better)</td><td class="num">{{ r.probes }}</td>
<td class="num">{{ r.candidate.rate|fmt }}</td><td>{{ r.candidate.rated_by }}</td>
{% if has_base %}<td class="num">{{ (r.baseline or {}).get("rate")|fmt }}</td><td class="num">{{ r.diff|fmt }}</td>
<td>{{ r.get("change") or "–" }}</td><td class="num">{{ r.win_rate|fmt }}</td>{% endif %}
<td class="num">{{ r.candidate.detector_rate|fmt }}</td><td class="num">{{ r.candidate.judge_rate|fmt }}</td>
<td class="num">{{ r.candidate.get("detector_judge")|fmt }}</td></tr>{% endfor %}
</table>
<p class="meta">The headline rate is the judge's where a judge ran and is not weak (its health, how often its
P(yes) is near 0.5, and its agreement with people's labels where there are some), else the detector's; "detector"
and "judge" give each one's rate alone (verbosity: the share judged too long, over {{ ratio }}× the reference for the
detector). Shares carry Wilson 95% intervals with their n (below 5 probes: too few to estimate); the length ratio a
bootstrap interval. Differences are candidate − baseline over the same probes (Newcombe's interval for shares);
"change" says whether that is better or worse, or no clear change when the interval holds 0; the win rate is
P(candidate's response is better).</p>
{% for title, svg in plots %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}
{% for r in s.results %}<h2 id="suite-{{ r.suite }}">{{ r.suite }}</h2>
<table><tr><th></th><th>{{ r.metric }}</th><th>by</th><th>refusal classes</th><th>agreement with people</th></tr>
{% for side in ("candidate", "baseline") %}{% if r[side] %}<tr><td>{{ side }}</td><td class="num">{{ r[side].rate|fmt }}</td>
<td>{{ r[side].rated_by }}</td><td>{{ r[side].get("refusal_classes", "–") }}</td>
<td>{% set h = r[side].get("human_agreement") %}{% if h %}detector {{ h.detector|fmt }} (three classes {{ h.detector_class_accuracy|pct }}),
XSTest keyword match {{ h.keyword|fmt }}, judge {{ h.judge|fmt }} (n={{ h.n }}){% else %}–{% endif %}</td></tr>{% endif %}{% endfor %}
</table>
{% if r.candidate.get("detector_checked") %}<p class="meta">{{ r.candidate.detector_checked }}</p>{% endif %}
{% set bad = worst[r.suite] %}{% if bad %}<h3>Worst examples</h3>{% for run in bad %}
<div class="example"><div class="meta">{{ run.probe.id }} · {{ run.probe.principles|join(", ") }}
· detector: {{ run.detector }}{% if run.judge %} · judge P(failure) = {{ "%.3f"|format(run.judge.p_fail) }}{% endif %}</div>
{% for variant, conv in run.conversations.items() %}{% if run.conversations|length > 1 %}<div class="meta">{{ variant }}</div>{% endif %}
{% for m in conv %}<div class="turn {{ m.role }}"><b>{{ m.role }}:</b> {{ m.content }}</div>{% endfor %}{% endfor %}</div>
{% endfor %}{% endif %}{% endfor %}
{% if s.skipped_rows %}<h2>Skipped rows</h2><ul>{% for x in s.skipped_rows %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
</body></html>
""")


def _health_html(health: dict | None, who: str = "eval judge") -> str:
    """The judge health record's own HTML (escaped by it), or "" without one."""
    if not health:
        return ""
    from cai.judge.health import JudgeHealth

    return JudgeHealth.from_dict(health).html(who)


def behavior_report(summary: dict, runs: list, worst: int = 3) -> str:
    """The behaviour evaluation as one self-contained HTML page: warnings and the eval judge's
    health first, then the rates (detector and judge side by side), plots and worst examples."""
    return _BEHAVIOR.render(
        s=summary, style=_STYLE, plots=_unique_ids(rate_plots(summary["results"])), ratio=VERBOSE_RATIO,
        warnings=behavior_warnings(summary), health_html=_health_html(summary.get("judge_health")),
        has_base=any(r["baseline"] for r in summary["results"]),
        worst={r["suite"]: worst_examples(runs, r["suite"], worst) for r in summary["results"]},
    )


def reward_plots(biases: list[dict], lengths: list[int], rewards: list[float]) -> list[tuple[str, str]]:
    """Share preferring the worse variant per bias, margin histograms, reward against length."""
    plt = _pyplot()
    plots = []
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(biases) + 2), 3.2))
    _bars(ax, [b["bias"] for b in biases], [("prefers worse variant", [b["prefers_worse"] for b in biases])])
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1.05)
    plots.append(("How often the reward model prefers the worse variant (95% interval)", _svg(fig)))
    cols = min(3, len(biases))
    rows = (len(biases) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, b in zip(axes.flat, biases):
        ax.hist(b["margins"], bins=min(20, max(5, len(b["margins"]))), color="#4c72b0")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(f"{b['bias']} (n={b['n']})")
    for ax in list(axes.flat)[len(biases):]:
        ax.axis("off")
    fig.supxlabel("reward margin: better - worse")
    fig.tight_layout()
    plots.append(("Reward margins per bias (left of 0: the worse variant is paid more)", _svg(fig)))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.scatter(lengths, rewards, s=10, alpha=0.6)
    ax.set_xlabel("response length (words)")
    ax.set_ylabel("reward")
    plots.append(("Reward against length", _svg(fig)))
    return plots


_REWARD = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cai reward-model audit</title>
<style>{{ style }}</style></head><body>
<h1>Reward-model audit</h1>
<p class="meta">reward model: <code>{{ s.reward_model }}</code> · {{ s.pairs }} controlled pairs · cai {{ s.cai_version }}</p>
{% if s.verdict %}<p class="{{ 'note warning' if s.verdict.status in ('fails', 'doubtful') else 'meta' }}">audit: <b>{{ s.verdict.status }}</b>: {{ s.verdict.text }}</p>{% endif %}
<table id="summary"><tr><th>bias</th><th>pairs</th><th>prefers worse [95% CI]</th><th>mean margin [95% CI]</th></tr>
{% for b in s.biases %}<tr><td>{{ b.bias }}</td><td class="num">{{ b.n }}</td><td class="num">{{ b.prefers_worse|fmt }}</td>
<td class="num">{{ b.mean_margin|fmt }}</td></tr>{% endfor %}</table>
<p>Length–reward correlation over {{ s.length_reward.n }} responses: Pearson {{ s.length_reward.pearson }},
Spearman {{ s.length_reward.spearman }}.</p>
{% for title, svg in plots %}<figure class="plot"><figcaption>{{ title }}</figcaption>{{ svg|safe }}</figure>{% endfor %}
<h2>Pairs the reward model gets most wrong</h2>
{% for p in worst %}<div class="example"><div class="meta">{{ p.bias }} · {{ p.suite }}/{{ p.probe }} · margin {{ "%.3f"|format(p.margin) }}</div>
<div class="turn user"><b>user:</b> {{ p.prompt }}</div>
<div class="turn assistant"><b>better:</b> {{ p.better }}</div><div class="turn assistant"><b>worse:</b> {{ p.worse }}</div></div>
{% endfor %}</body></html>
""")


def reward_report(summary: dict, pairs: list[dict], lengths: list[int], rewards: list[float], worst: int = 5) -> str:
    """The reward-model audit as one self-contained HTML page."""
    biases = [{**b, "margins": [p["margin"] for p in pairs if p["bias"] == b["bias"]]} for b in summary["biases"]]
    return _REWARD.render(s=summary, style=_STYLE, plots=_unique_ids(reward_plots(biases, lengths, rewards)),
                          worst=sorted(pairs, key=lambda p: p["margin"])[:worst])
