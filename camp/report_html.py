"""`camp report --format html`: the report's JSON document (docs/report.md, "JSON") -> one self-contained HTML
page: per campaign, the headline numbers, daily sends and conversions, the funnel sent -> clicked -> redeemed -> ordered,
and the uplift with its 95% interval per arm; then reach per step. Charts are inline SVG drawn here (no script,
no font, no file or address outside the page), so the page opens anywhere, offline, and prints.

    html_of(doc) -> str
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

_W, _H, _PAD = 640, 220, 40  # chart size and the room for axes


@dataclass(frozen=True)
class _Bar:
    label: str
    value: float
    shown: str


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _interval(i: dict | None) -> str:
    if not i or i.get("value") is None:
        return "–"
    low, high = i.get("low"), i.get("high")
    return _pct(i["value"]) + ("" if low is None or high is None else f" [{_pct(low)}, {_pct(high)}]")


def _pp(i: dict | None) -> str:
    """An uplift (a difference of rates) in percentage points, with its interval."""
    if not i or i.get("value") is None:
        return "–"
    def pp(x: float) -> str:
        return f"{x * 100:+.1f} pp"
    low, high = i.get("low"), i.get("high")
    return pp(i["value"]) + ("" if low is None or high is None else f" [{pp(low)}, {pp(high)}]")


def _svg(body: list[str], title: str, height: int = _H) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}">'
                  f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def _daily(days: list[dict]) -> Markup:
    """Grouped bars per local date: reached (sent) and treated converters; the holdout's converters as dots."""
    if not days:
        return Markup('<p class="empty">no sends yet</p>')
    top = max(max(d.get("reached", 0), d.get("converted", 0), d.get("holdout_converted", 0)) for d in days) or 1
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    slot = plot_w / len(days)
    bar = max(min(slot / 3, 40), 2)
    out = [f'<line class="axis" x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}"/>',
           f'<text class="tick" x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{top:,}</text>',
           f'<text class="tick" x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end">0</text>']
    for i, d in enumerate(days):
        x = _PAD + i * slot + (slot - 2 * bar) / 2
        for j, (key, cls) in enumerate((("reached", "sent"), ("converted", "conv"))):
            v = d.get(key, 0) or 0
            h = plot_h * v / top
            out.append(f'<rect class="{cls}" x="{x + j * bar:.1f}" y="{_H - _PAD - h:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}"><title>{escape(d["day"])}: {key} {v:,}</title></rect>')
        hc = d.get("holdout_converted", 0) or 0
        cy = _H - _PAD - plot_h * hc / top
        out.append(f'<circle class="hold" cx="{x + bar:.1f}" cy="{cy:.1f}" r="3"><title>{escape(d["day"])}: '
                   f'holdout converted {hc:,} of {d.get("holdout", 0):,}</title></circle>')
        if len(days) <= 16 or i % max(len(days) // 8, 1) == 0:
            out.append(f'<text class="tick" x="{x + bar:.1f}" y="{_H - _PAD + 14}" text-anchor="middle">'
                       f'{escape(d["day"][5:])}</text>')
    out.append(f'<text class="legend" x="{_PAD}" y="16"><tspan class="sent-t">■ sent</tspan>  '
               '<tspan class="conv-t">■ converted (treated)</tspan>  <tspan class="hold-t">● converted (holdout)'
               '</tspan></text>')
    return _svg(out, "daily sends and conversions")


def _funnel(bars: list[_Bar]) -> Markup:
    top = max((b.value for b in bars), default=0) or 1
    row = 34
    height = len(bars) * row + 20
    out = []
    for i, b in enumerate(bars):
        w = (_W - 220) * b.value / top
        y = 10 + i * row
        out.append(f'<text class="label" x="150" y="{y + 18}" text-anchor="end">{escape(b.label)}</text>'
                   f'<rect class="funnel" x="160" y="{y}" width="{w:.1f}" height="24"><title>{escape(b.label)}: '
                   f'{escape(b.shown)}</title></rect>'
                   f'<text class="value" x="{160 + w + 6:.1f}" y="{y + 18}">{escape(b.shown)}</text>')
    return _svg(out, "funnel: sent, clicked, redeemed, ordered", height)


def _uplift(groups: list[dict]) -> Markup:
    """Each arm's uplift (percentage points) with its 95% interval, around the zero line."""
    rows = [g for g in groups if (g.get("uplift") or {}).get("value") is not None]
    if not rows:
        return Markup('<p class="empty">no uplift: the campaign has no holdout yet, or nobody to compare</p>')
    lows = [g["uplift"].get("low", g["uplift"]["value"]) for g in rows]
    highs = [g["uplift"].get("high", g["uplift"]["value"]) for g in rows]
    span = max(abs(min(lows + [0])), abs(max(highs + [0]))) or 0.01
    row = 36
    height = len(rows) * row + 40
    mid, half = 160 + (_W - 200) / 2, (_W - 200) / 2

    def x(v: float) -> float:
        return mid + half * v / span

    out = [f'<line class="zero" x1="{mid:.1f}" y1="4" x2="{mid:.1f}" y2="{height - 24}"/>',
           f'<text class="tick" x="{x(-span):.1f}" y="{height - 8}" text-anchor="start">{-span * 100:+.1f} pp</text>',
           f'<text class="tick" x="{mid:.1f}" y="{height - 8}" text-anchor="middle">0</text>',
           f'<text class="tick" x="{x(span):.1f}" y="{height - 8}" text-anchor="end">{span * 100:+.1f} pp</text>']
    for i, (g, lo, hi) in enumerate(zip(rows, lows, highs, strict=True)):
        y = 20 + i * row
        name = g.get("arm") or "all treated"
        out.append(f'<text class="label" x="150" y="{y + 4}" text-anchor="end">{escape(name)}</text>'
                   f'<line class="ci" x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}"/>'
                   f'<line class="ci" x1="{x(lo):.1f}" y1="{y - 6}" x2="{x(lo):.1f}" y2="{y + 6}"/>'
                   f'<line class="ci" x1="{x(hi):.1f}" y1="{y - 6}" x2="{x(hi):.1f}" y2="{y + 6}"/>'
                   f'<circle class="est" cx="{x(g["uplift"]["value"]):.1f}" cy="{y}" r="5"><title>{escape(name)}: '
                   f'{escape(_pp(g["uplift"]))}</title></circle>')
    return _svg(out, "uplift with its 95% interval per arm", height)


def _charts(c: dict) -> dict[str, Markup]:
    total = c.get("total") or {}
    coupons = total.get("coupons") or {}
    funnel = [_Bar("sent", total.get("reached", 0), f"{total.get('reached', 0):,}")]
    clicks = total.get("clicks")
    if clicks is not None:
        funnel.append(_Bar("clicked", clicks["clicked"], f"{clicks['clicked']:,}"))
    if coupons.get("issued"):
        funnel.append(_Bar("redeemed", coupons.get("redeemed", 0), f"{coupons.get('redeemed', 0):,}"))
    funnel.append(_Bar("ordered (goal)", total.get("converted", 0), f"{total.get('converted', 0):,}"))
    arms = c.get("arms") or []
    return {"daily": _daily(c.get("daily") or []), "funnel": _funnel(funnel),
            "uplift": _uplift(arms if arms else [total])}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>camp report · {{ doc.as_of }}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",sans-serif;margin:24px;
color:#1d2433;max-width:1100px}
h1{font-size:20px} h2{font-size:17px;margin-top:36px;border-bottom:1px solid #d6dbe4;padding-bottom:4px}
h3{font-size:14px;margin:18px 0 6px;color:#46516a}
table{border-collapse:collapse;margin:6px 0} td,th{padding:3px 10px;border-bottom:1px solid #eceff4;text-align:right}
th:first-child,td:first-child{text-align:left} .kpi td:first-child{color:#46516a}
.met{color:#1b7f3b;font-weight:600} .missed{color:#b42318;font-weight:600} .note{color:#6b7488}
.chart{max-width:100%;height:auto;background:#fafbfc;border:1px solid #eceff4}
.axis,.zero{stroke:#8a93a6} .sent{fill:#7aa2e3} .conv{fill:#2f6f3e} .hold{fill:#d9822b} .funnel{fill:#5b8def}
.ci{stroke:#1d2433;stroke-width:2} .est{fill:#b42318} .tick,.legend,.label,.value{font-size:11px;fill:#46516a}
.sent-t{fill:#7aa2e3} .conv-t{fill:#2f6f3e} .hold-t{fill:#d9822b} .empty{color:#6b7488}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
</style></head><body>
<h1>camp report</h1>
<p class="note">as of {{ doc.as_of }} · money in {{ doc.currency }}{% if doc.margin %} · gross margin
{{ pct(doc.margin|float) }}{% endif %} · conversion is intention to treat against the holdout (docs/report.md)</p>
{% if not doc.campaigns %}<p class="empty">No campaign has deliveries in the ledger yet.</p>{% endif %}
{% for c in doc.campaigns %}{% set t = c.total or {} %}
<section class="campaign" id="c-{{ loop.index }}">
<h2>{{ c.campaign }}</h2>
<p class="note">{% if c.objective %}why {{ c.objective }} · {% endif %}entry step {{ c.entry_step }} · goal window {{ c.goal_window or "–" }} · holdout
{{ pct(c.holdout_share|float) if c.holdout_share is not none else "–" }}{% if c.window_open %} ·
<b>window open</b> for {{ "{:,}".format(t.open_windows or 0) }} exposures: numbers still move{% endif %}</p>
<table class="kpi">
{% set nc = t.new_customers or {} %}{% set rc = t.recall or {} %}
{% set new_first = c.objective in ("acquisition", "activation") %}
{% macro new_rows(nc) %}{% if nc %}<tr><td>new customers, treated</td><td>{{ "{:,}".format(nc.count or 0) }}
({{ interval(nc.rate) }})</td></tr>
<tr><td>new customers, holdout</td><td>{{ "{:,}".format(nc.holdout_count or 0) }} ({{ interval(nc.holdout_rate) }})</td></tr>
<tr><td>new customers uplift</td><td>{{ pp(nc.uplift) }}</td></tr>{% endif %}{% endmacro %}
{% if c.objective == "reactivation" and rc %}<tr><td>recall rate, treated</td><td>{{ "{:,}".format(rc.ordered or 0) }}
({{ interval(rc.rate) }})</td></tr>
<tr><td>recall rate, holdout</td><td>{{ "{:,}".format(rc.holdout_ordered or 0) }} ({{ interval(rc.holdout_rate) }})</td></tr>
<tr><td>recall uplift</td><td>{{ pp(rc.uplift) }}</td></tr>{% endif %}
{% if new_first %}{{ new_rows(nc) }}{% endif %}
<tr><td>treated (reached)</td><td>{{ "{:,}".format(t.treated or 0) }} ({{ "{:,}".format(t.reached or 0) }})</td></tr>
<tr><td>conversion, treated</td><td>{{ interval(t.conversion) }}</td></tr>
<tr><td>conversion, holdout ({{ "{:,}".format(t.holdout or 0) }})</td><td>{{ interval(t.holdout_conversion) }}</td></tr>
<tr><td>uplift</td><td>{{ pp(t.uplift) }}</td></tr>
<tr><td>relative uplift</td><td>{{ interval(t.relative_uplift) }}</td></tr>
<tr><td>incremental conversions</td><td>{{ "–" if t.incremental_conversions is none else
"{:,.1f}".format(t.incremental_conversions) }}</td></tr>
<tr><td>orders · sales · AOV</td><td>{{ "{:,}".format(t.orders or 0) }} · {{ t.sales or "–" }} · {{ t.aov or "–" }}</td></tr>
{% if t.clicks %}<tr><td>clicked / reached</td><td>{{ "{:,}".format(t.clicks.clicked) }} /
{{ "{:,}".format(t.reached or 0) }} ({{ interval(t.clicks.rate) }})</td></tr>{% endif %}
{% if t.coupons and t.coupons.issued %}<tr><td>coupons redeemed / issued</td><td>{{ "{:,}".format(t.coupons.redeemed) }} /
{{ "{:,}".format(t.coupons.issued) }} ({{ interval(t.coupons.redemption_rate) }})</td></tr>{% endif %}
<tr><td>subsidy (discounts + sends)</td><td>{{ t.subsidy or "–" }}</td></tr>
<tr><td>cost per incremental conversion</td><td>{{ t.cost_per_incremental_conversion or "–" }}</td></tr>
<tr><td>ROI</td><td>{{ t.roi or "–" }}</td></tr>
{% if not new_first %}{{ new_rows(nc) }}{% endif %}
{% for g in c.targets or [] %}<tr><td>target {{ g.metric }} {{ g.op }} {{ pct(g.value|float) }}</td>
<td class="{{ g.status }}">{{ g.status }}{% if g.sure %} (the whole interval){% endif %}: {{ interval(g.actual) }}</td></tr>{% endfor %}
</table>
<div class="grid">
<div><h3>Daily sends and conversions</h3>{{ charts[loop.index0].daily }}</div>
<div><h3>Funnel</h3>{{ charts[loop.index0].funnel }}</div>
<div><h3>Uplift, 95% interval</h3>{{ charts[loop.index0].uplift }}</div>
</div>
{% if c.arms %}<h3>Arms</h3><table><tr><th>arm</th><th>treated</th><th>reached</th><th>conversion</th><th>uplift</th>
<th>incremental</th><th>sales</th></tr>{% for a in c.arms %}<tr><td>{{ a.arm }}</td><td>{{ "{:,}".format(a.treated) }}</td>
<td>{{ "{:,}".format(a.reached) }}</td><td>{{ interval(a.conversion) }}</td><td>{{ pp(a.uplift) }}</td>
<td>{{ "–" if a.incremental_conversions is none else "{:,.1f}".format(a.incremental_conversions) }}</td>
<td>{{ a.sales }}</td></tr>{% endfor %}</table>{% endif %}
<h3>Reach per step</h3><table><tr><th>step</th><th>arm</th><th>assigned</th><th>reached</th><th>holdout</th>
<th>not sent</th><th>cost</th></tr>{% for s in c.steps or [] %}<tr><td>{{ s.step }}</td><td>{{ s.arm or "" }}</td>
<td>{{ "{:,}".format(s.assigned) }}</td><td>{{ "{:,}".format(s.reached) }}</td><td>{{ "{:,}".format(s.holdout) }}</td>
<td>{{ "{:,}".format(not_sent(s)) }}</td><td>{{ s.cost }}</td></tr>{% endfor %}</table>
</section>{% endfor %}
</body></html>
"""


def _not_sent(step: dict) -> int:
    return max(int(step.get("assigned", 0)) - int(step.get("reached", 0)) - int(step.get("holdout", 0)), 0)


def html_of(doc: dict[str, Any]) -> str:
    """The page for a report document (JSON version 1)."""
    env = Environment(autoescape=True, trim_blocks=False)
    page = env.from_string(_PAGE)
    charts = [_charts(c) for c in doc.get("campaigns", [])]
    return page.render(doc=doc, charts=charts, pct=_pct, interval=_interval, pp=_pp, not_sent=_not_sent)
