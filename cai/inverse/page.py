"""The HTML pages of `cai principles test --pairs` and `cai principles propose`: one static file,
plots drawn as inline SVG (no plotting library, no scripts), every number with its n and 95%
interval, and the pairs each principle gets most wrong, for reading."""

from __future__ import annotations

import html
from collections.abc import Sequence

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.small{color:#a60}.pair{font-size:12px;max-width:340px;white-space:pre-wrap}svg{display:block;margin:.5em 0}
h2{margin-top:1.6em}.note{color:#555}.warning{background:#fff3cd;border:1px solid #d9a400;padding:.5em .8em}
.judge-health.bad strong{color:#a00}.judge-health.warn strong{color:#a60}"""


def _e(x) -> str:
    return html.escape(str(x))


def _est(m: dict | None, pct: bool = True) -> str:
    """``62.5% [40.1, 80.2]`` (or a signed number when not a share); ``n/a`` when unknown."""
    if not m or m.get("value") is None:
        return "n/a"
    fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:+.3f}")
    ci = m.get("ci")
    return fmt(m["value"]) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")


def _small(flag: bool) -> str:
    return ' <span class="small">small sample</span>' if flag else ""


def strength_plot(rows: Sequence[dict], width: int = 700) -> str:
    """Each principle's strength (dot) and its 95% interval (line), on [-1, 1]."""
    left, right, h = 260, 20, 22
    span = width - left - right
    x = lambda v: left + (v + 1) / 2 * span  # noqa: E731
    out = [f'<svg width="{width}" height="{h * len(rows) + 30}" role="img" aria-label="strength">',
           f'<line x1="{x(0)}" y1="0" x2="{x(0)}" y2="{h * len(rows)}" stroke="#999"/>']
    for i, r in enumerate(rows):
        y = i * h + h / 2
        s = r["strength"]
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" font-size="12">{_e(r["principle"][:38])}</text>')
        if s.get("ci"):
            out.append(f'<line x1="{x(s["ci"][0])}" y1="{y}" x2="{x(s["ci"][1])}" y2="{y}" stroke="#4a7" stroke-width="3"/>')
        if s.get("value") is not None:
            out.append(f'<circle cx="{x(s["value"])}" cy="{y}" r="4" fill="#163"/>')
    for v in (-1, -0.5, 0, 0.5, 1):
        out.append(f'<text x="{x(v)}" y="{h * len(rows) + 16}" text-anchor="middle" font-size="11">{v:g}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter_plot(rows: Sequence[dict], size: int = 360) -> str:
    """Relevance (x) against accuracy where the principle applies (y), both on [0, 1]."""
    pad = 36
    span = size - 2 * pad
    out = [f'<svg width="{size + 200}" height="{size}" role="img" aria-label="relevance and accuracy">',
           f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#999"/>',
           f'<line x1="{pad}" y1="{pad + span / 2}" x2="{pad + span}" y2="{pad + span / 2}" stroke="#ccc"/>',
           f'<text x="{pad + span / 2}" y="{size - 6}" text-anchor="middle" font-size="12">relevance</text>',
           f'<text x="10" y="{pad - 10}" font-size="12">accuracy</text>']
    for r in rows:
        rel, acc = r["relevance"]["value"], r["accuracy"]["value"]
        if rel is None or acc is None:
            continue
        cx, cy = pad + rel * span, pad + (1 - acc) * span
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#27a"/>'
                   f'<text x="{cx + 6:.1f}" y="{cy + 4:.1f}" font-size="11">{_e(r["principle"][:30])}</text>')
    out.append("</svg>")
    return "".join(out)


def correlation_plot(names: Sequence[str], relations: Sequence[dict], cell: int = 26) -> str:
    """The vote correlation of every two principles: blue agree, red opposed."""
    if len(names) < 2:
        return ""
    corr = {(r["a"], r["b"]): r["correlation"] for r in relations}
    left = 40
    out = [f'<svg width="{left + cell * len(names) + 10}" height="{cell * len(names) + 10}" role="img" '
           f'aria-label="vote correlation">']
    for i, a in enumerate(names):
        out.append(f'<text x="{left - 4}" y="{i * cell + cell / 2 + 4}" text-anchor="end" font-size="11">{i + 1}</text>')
        for j, b in enumerate(names):
            c = 1.0 if i == j else corr.get((a, b), corr.get((b, a)))
            if c is None:
                fill = "#eee"
            else:
                k = int(255 * (1 - abs(c)))
                fill = f"rgb({k},{k},255)" if c >= 0 else f"rgb(255,{k},{k})"
            label = "n/a" if c is None else f"{c:.2f}"
            out.append(f'<rect x="{left + j * cell}" y="{i * cell}" width="{cell - 1}" height="{cell - 1}" '
                       f'fill="{fill}"><title>{_e(a)} / {_e(b)}: {label}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def curve_plot(steps: Sequence[dict], baseline: float | None, width: int = 520, height: int = 220) -> str:
    """The set accuracy after each greedy step, with the no-principle judge as a dashed line."""
    if not steps:
        return ""
    pad = 36
    n = len(steps)
    x = lambda i: pad + (i / max(n - 1, 1)) * (width - 2 * pad)  # noqa: E731
    y = lambda v: height - pad - v * (height - 2 * pad)  # noqa: E731
    points = " ".join(f"{x(i):.1f},{y(s['accuracy']):.1f}" for i, s in enumerate(steps))
    out = [f'<svg width="{width}" height="{height}" role="img" aria-label="greedy selection">',
           f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" stroke="#999"/>',
           f'<polyline points="{points}" fill="none" stroke="#163" stroke-width="2"/>']
    for i, s in enumerate(steps):
        out.append(f'<circle cx="{x(i):.1f}" cy="{y(s["accuracy"]):.1f}" r="3" fill="#163">'
                   f'<title>{_e(s["added"])}: {s["accuracy"]:.3f}</title></circle>'
                   f'<text x="{x(i):.1f}" y="{height - pad + 14}" text-anchor="middle" font-size="11">{i + 1}</text>')
    if baseline is not None:
        out.append(f'<line x1="{pad}" y1="{y(baseline):.1f}" x2="{width - pad}" y2="{y(baseline):.1f}" '
                   f'stroke="#a33" stroke-dasharray="4 3"><title>no-principle judge {baseline:.3f}</title></line>')
    for v in (0, 0.5, 1):
        out.append(f'<text x="{pad - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:g}</text>')
    out.append("</svg>")
    return "".join(out)


def principle_table(rows: Sequence[dict]) -> str:
    head = ("<tr><th>#</th><th>principle</th><th>votes (agree/disagree/abstain)</th><th>relevance</th>"
            "<th>accuracy where it applies</th><th>strength</th><th>position consistency</th></tr>")
    body = []
    for i, r in enumerate(rows, 1):
        pc = r.get("position_consistency") or {}
        pcs = "n/a" if pc.get("value") is None else f"{100 * pc['value']:.0f}% of {pc['n']}"
        body.append(f"<tr><td>{i}</td><td>{_e(r['principle'])}<br><span class='note'>{_e(r.get('title', ''))}</span></td>"
                    f"<td class='num'>{r['agree']}/{r['disagree']}/{r['abstain']} of {r['n']}</td>"
                    f"<td class='num'>{_est(r['relevance'])}</td>"
                    f"<td class='num'>{_est(r['accuracy'])}{_small(r['small_sample'])}</td>"
                    f"<td class='num'>{_est(r['strength'], pct=False)}</td><td class='num'>{pcs}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _together(report: dict) -> str:
    c, b, g = report["constitution"], report["no_principle"], report["constitution_minus_no_principle"]
    return ("<table><tr><th>voter</th><th>agreement with the labels</th><th>n</th></tr>"
            f"<tr><td>the principles voting together (majority; a tie is a coin flip)</td><td class='num'>{_est(c)}"
            f"{_small(c['small_sample'])}</td><td class='num'>{c['n']}</td></tr>"
            f"<tr><td>the same judge asked with no principle: “{_e(report.get('no_principle_question', ''))}”</td>"
            f"<td class='num'>{_est(b)}</td><td class='num'>{b['n']}</td></tr>"
            f"<tr><td>difference (paired)</td><td class='num'>{_est(g, pct=False)}</td><td class='num'>{g['n']}</td></tr>"
            "</table>")


def _relations(report: dict) -> str:
    rows = [r for r in report["relations"] if r["contradict"]]
    top = sorted((r for r in report["relations"] if r["correlation"] is not None),
                 key=lambda r: -abs(r["correlation"]))[:10]
    out = ["<h3>Contradictions</h3>"]
    if not rows:
        out.append("<p class='note'>No two principles pick opposite responses on most of the pairs where both apply "
                   "(at least 5).</p>")
    else:
        out.append("<table><tr><th>a</th><th>b</th><th>both apply</th><th>same pick</th></tr>" + "".join(
            f"<tr><td>{_e(r['a'])}</td><td>{_e(r['b'])}</td><td class='num'>{r['both']}</td>"
            f"<td class='num'>{100 * r['same']:.0f}%</td></tr>" for r in rows) + "</table>")
    out.append("<h3>Strongest overlaps (vote correlation)</h3><table><tr><th>a</th><th>b</th><th>correlation</th>"
               "<th>both apply</th></tr>" + "".join(
                   f"<tr><td>{_e(r['a'])}</td><td>{_e(r['b'])}</td><td class='num'>{r['correlation']:+.2f}</td>"
                   f"<td class='num'>{r['both']}</td></tr>" for r in top) + "</table>")
    return "".join(out)


def _worst(rows: Sequence[dict]) -> str:
    out = []
    for r in rows:
        if not r.get("worst"):
            continue
        out.append(f"<h3>{_e(r['principle'])}</h3><table><tr><th>prompt</th><th>chosen (by people)</th>"
                   "<th>rejected</th><th>P(rejected)</th></tr>")
        out += [f"<tr><td class='pair'>{_e(w['prompt'])}</td><td class='pair'>{_e(w['chosen'])}</td>"
                f"<td class='pair'>{_e(w['rejected'])}</td><td class='num'>{w['p_rejected']:.2f}</td></tr>"
                for w in r["worst"]]
        out.append("</table>")
    return "".join(out) or "<p class='note'>No principle picked a rejected response.</p>"


def body(report: dict) -> str:
    """The sections shared by both pages: the table, the plots, relations, the hardest pairs."""
    rows = report["principles"]
    names = [r["principle"] for r in rows]
    legend = "".join(f"<li>{i}. {_e(n)}</li>" for i, n in enumerate(names, 1))
    return (f"<h2>Principles, by strength</h2>{principle_table(rows)}"
            "<p class='note'>Relevance: share of pairs where the principle applies. Accuracy: share right where it "
            "applies. Strength: Cohen's κ (chance ½) × relevance, the mean vote (Feedback Forensics). "
            "Brackets: bootstrap 95% intervals over the pairs.</p>"
            f"{strength_plot(rows)}<h2>Relevance and accuracy</h2>{scatter_plot(rows)}"
            f"<h2>The principles together</h2>{_together(report)}"
            f"<h2>Between principles</h2>{correlation_plot(names, report['relations'])}<ol class='note'>{legend}</ol>"
            f"{_relations(report)}<h2>Pairs each principle gets most wrong</h2>{_worst(rows)}")


def judge_health(report: dict) -> str:
    """The judge-health section (:mod:`cai.judge.health`), led by a warning when the judge is weak
    or unhealthy: every strength and accuracy on the page rests on its votes."""
    h = report.get("judge_health")
    if not h:
        return ""
    from cai.judge.health import JudgeHealth

    health = JudgeHealth.from_dict(h)
    warning = ""
    if health.status in ("weak", "unhealthy"):
        warning = (f"<p class='warning'><strong>Warning: the judge is {_e(health.status)}</strong>: "
                   f"{_e('; '.join(health.reasons))}. Every vote, accuracy and strength on this page comes from "
                   "this judge; read them as its opinion, not the principles' merit.</p>")
    return f"{warning}<h2>Judge health</h2>{health.html('judge')}"


def page(title: str, intro: str, content: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style>"
            f"</head><body><h1>{_e(title)}</h1>{intro}{content}</body></html>")


def test_page(report: dict) -> str:
    judge = report.get("judge") or {}
    intro = (f"<p>{report['pairs']} pairs from <code>{_e(report['file'])}</code> (data sha256 "
             f"<code>{_e(report['data_hash'][:16])}</code>); judge <code>{_e(judge.get('model'))}</code> "
             f"({_e(judge.get('backend'))}), both orders, with a “does not apply” option.</p>")
    return page("Principles tested on labeled pairs", intro, judge_health(report) + body(report))


def propose_page(report: dict) -> str:
    """The propose page: what was proposed, the greedy steps, held-out accuracy, the candidates."""
    held, sel = report["held_out"], report["selection"]
    judge = report.get("judge") or {}
    intro = (f"<p>{report['train']} train pairs from <code>{_e(report['file'])}</code> (data sha256 "
             f"<code>{_e(report['data_hash'][:16])}</code>): {report['proposals']} proposals asked, "
             f"{report['unparseable']} unparseable, {report['proposed_principles']} principles proposed, "
             f"{report['candidates']} candidates after clustering; proposer "
             f"<code>{_e(report['proposer'].get('model'))}</code>, judge <code>{_e(judge.get('model'))}</code>.</p>")
    steps = "".join(f"<tr><td>{i}</td><td>{_e(s['added'])}</td><td class='num'>{100 * s['accuracy']:.1f}%</td></tr>"
                    for i, s in enumerate(sel["steps"], 1))
    rows = [f"<h2>Selected, greedily by the set's accuracy on the train pairs</h2><table><tr><th>step</th>"
            f"<th>added</th><th>set accuracy (train)</th></tr>{steps}</table><p class='note'>Stopped: "
            f"{_e(sel['stopped'])}.</p>", curve_plot(sel["steps"], report["no_principle"]["value"])]
    if held.get("nothing_selected") or not sel.get("selected"):
        rows.append(f"<h2>Held-out pairs ({held['pairs']})</h2><p class='warning'>No principle was selected "
                    f"({_e(sel['stopped'])}): there is no selected set, so no held-out accuracy.</p>")
    elif held.get("selected"):
        rows.append(f"<h2>Held-out pairs ({held['pairs']})</h2><table><tr><th>voter</th><th>agreement</th></tr>"
                    f"<tr><td>the selected principles together</td><td class='num'>{_est(held['selected'])}"
                    f"{_small(held['selected']['small_sample'])}</td></tr>"
                    f"<tr><td>no principle</td><td class='num'>{_est(held['no_principle'])}</td></tr>"
                    f"<tr><td>difference (paired)</td><td class='num'>{_est(held['selected_minus_no_principle'], False)}"
                    "</td></tr>")
        if held.get("constitution_accuracy"):
            rows.append(f"<tr><td>constitution {_e(held['constitution'])}</td>"
                        f"<td class='num'>{_est(held['constitution_accuracy'])}</td></tr>")
        rows.append("</table>")
    else:
        rows.append("<p class='note'>No held-out pairs (--test-size 0).</p>")
    rows.append("<h2>All candidates on the train pairs</h2>")
    return page("Principles proposed from labeled pairs", intro, judge_health(report) + "".join(rows) + body(report))
