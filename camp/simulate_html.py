"""`camp simulate --format html`: the simulation's JSON document -> one self-contained HTML page: sends per day
stacked by campaign, each budget's spend per day against its daily limit, the distribution of messages per user in
any 7 days with the caps, collisions and suppressions. Charts are inline SVG drawn here (no script, no font, no
file or address outside the page), as camp/report_html.py does, so the page opens anywhere, offline.

    html_of(doc) -> str
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

_W, _H, _PAD = 720, 240, 44
_COLOURS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e",
            "#9498a0"]


def _svg(body: list[str], title: str) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">'
                  f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def _axes(top: float) -> list[str]:
    return [f'<line class="axis" x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}"/>',
            f'<text class="tick" x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{top:,.0f}</text>',
            f'<text class="tick" x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end">0</text>']


def _stacked(days: list[str], series: dict[str, dict[str, float]], title: str) -> Markup:
    """Bars per day, stacked by series (campaign)."""
    if not days or not series:
        return Markup('<p class="empty">nothing sent</p>')
    totals = [sum(s.get(d, 0) for s in series.values()) for d in days]
    top = max(totals) or 1
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    slot = plot_w / len(days)
    bar = max(min(slot * 0.7, 40), 2)
    out = _axes(top)
    for i, d in enumerate(days):
        x, y = _PAD + i * slot + (slot - bar) / 2, _H - _PAD
        for j, (name, s) in enumerate(series.items()):
            v = s.get(d, 0)
            if not v:
                continue
            h = plot_h * v / top
            y -= h
            out.append(f'<rect fill="{_COLOURS[j % len(_COLOURS)]}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}"><title>{escape(d)} {escape(name)}: {v:,.0f}</title></rect>')
        if len(days) <= 16 or i % max(len(days) // 8, 1) == 0:
            out.append(f'<text class="tick" x="{x + bar / 2:.1f}" y="{_H - _PAD + 14}" text-anchor="middle">'
                       f'{escape(d[5:])}</text>')
    legend = "".join(f'<tspan fill="{_COLOURS[j % len(_COLOURS)]}">■</tspan> {escape(n)}  '
                     for j, n in enumerate(series))
    out.append(f'<text class="legend" x="{_PAD}" y="16">{legend}</text>')
    return _svg(out, title)


def _bars(labels: list[str], values: list[float], title: str, limit: float | None = None) -> Markup:
    """One bar per label; a dashed line at `limit`."""
    if not labels:
        return Markup('<p class="empty">no data</p>')
    top = max([*values, limit or 0]) or 1
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    slot = plot_w / len(labels)
    bar = max(min(slot * 0.7, 40), 2)
    out = _axes(top)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = _PAD + i * slot + (slot - bar) / 2
        h = plot_h * v / top
        out.append(f'<rect class="bar" x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                   f'<title>{escape(label)}: {v:,}</title></rect>')
        if len(labels) <= 16 or i % max(len(labels) // 8, 1) == 0:
            out.append(f'<text class="tick" x="{x + bar / 2:.1f}" y="{_H - _PAD + 14}" text-anchor="middle">'
                       f'{escape(label)}</text>')
    if limit is not None:
        y = _H - _PAD - plot_h * limit / top
        out.append(f'<line class="limit" x1="{_PAD}" y1="{y:.1f}" x2="{_W - _PAD}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{_W - _PAD}" y="{y - 4:.1f}" text-anchor="end">limit {limit:,}</text>')
    return _svg(out, title)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>camp simulate {{ doc['from'] }} – {{ doc['to'] }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .15em .8em .15em 0; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart { display: block; margin: .5em 0; } .axis { stroke: #888; } .tick, .legend { font-size: 11px; fill: #555; }
.bar { fill: #4269d0; } .limit { stroke: #d62728; stroke-dasharray: 4 3; } .empty { color: #888; }
.no { color: #d62728; font-weight: bold; } .note { color: #555; }
</style></head><body>
<h1>Simulation {{ doc['from'] }} to {{ doc['to'] }}</h1>
<p class="note">{{ doc['timezone'] }} · a scratch copy of the ledger, nothing was sent · runs:
{% for k, n in doc['runs'].items() %}{{ n }} {{ k }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}</p>
{% for c, n in doc['events'].items() %}<p class="note">{{ c }}: {{ n }} events replayed from the warehouse{% if not n %}
(none in the period: it sends nothing){% endif %}</p>{% endfor %}
<h2>Sends per day</h2>
{{ sends }}
<table><tr><th>channel</th><th class="n">sent</th></tr>
{% for ch, n in channels.items() %}<tr><td>{{ ch }}</td><td class="n">{{ "{:,}".format(n) }}</td></tr>{% endfor %}</table>
<h2>Budgets ({{ doc['currency'] }})</h2>
{% for b in doc['budgets'] %}
<h3>{{ b['campaign'] }}</h3>
<p>total {{ b['total'] or 'unlimited' }}, per day {{ b['daily'] or 'unlimited' }}; spent before {{ b['spent_before'] }},
in the period {{ b['spent'] }}, left {{ b['left'] or '–' }}.
{% if b['total_runs_out'] %}<b>The total runs out on {{ b['total_runs_out'] }}.</b>{% endif %}
{% if b['daily_runs_out'] %}The daily budget stopped deliveries on {{ b['daily_runs_out'] | length }} days
(first {{ b['daily_runs_out'][0] }}).{% endif %}</p>
{{ spend[b['campaign']] }}
{% else %}<p class="empty">no campaign has a budget</p>{% endfor %}
<h2>Contact pressure</h2>
<p>{{ "{:,}".format(doc['pressure']['users_messaged']) }} users messaged. Most messages per user in any 7 days:
p95 {{ doc['pressure']['per_7_days']['p95'] }}, max {{ doc['pressure']['per_7_days']['max'] }}.</p>
{{ pressure }}
<table><tr><th>cap</th><th>campaign</th><th class="n">limit</th><th class="n">most seen</th><th></th></tr>
{% for c in doc['pressure']['caps'] %}<tr><td>{{ c['unit'] }} per {{ c['per'] }} ({{ c['scope'] }})</td>
<td>{{ c['campaign'] or '–' }}</td><td class="n">{{ c['limit'] }}{% if c['tiered_by'] %} (by {{ c['tiered_by'] }}){% endif %}</td>
<td class="n">{{ c['max_seen'] }}</td><td{% if not c['within'] %} class="no"{% endif %}>{{ 'within' if c['within'] else 'OVER' }}</td></tr>
{% endfor %}</table>
<h2>Collisions</h2>
<p>Users several campaigns wanted on the same day, and the campaigns that delivered to them.</p>
<table><tr><th>campaigns</th><th>won by</th><th class="n">user-days</th><th class="n">users</th></tr>
{% for g in doc['collisions']['groups'][:20] %}<tr><td>{{ g['campaigns'] | join(', ') }}</td>
<td>{{ g['winners'] | join(', ') or 'none' }}</td><td class="n">{{ "{:,}".format(g['user_days']) }}</td>
<td class="n">{{ "{:,}".format(g['users']) }}</td></tr>{% else %}<tr><td colspan="4" class="empty">none</td></tr>{% endfor %}
</table>
<h2>Suppressions by reason</h2>
<table><tr><th>campaign</th><th>status</th><th>reason</th><th class="n">users</th></tr>
{% for s in doc['suppressions'] %}<tr><td>{{ s['campaign'] }}</td><td>{{ s['status'] }}</td><td>{{ s['reason'] }}</td>
<td class="n">{{ "{:,}".format(s['users']) }}</td></tr>{% endfor %}</table>
</body></html>
"""


def html_of(doc: dict[str, Any]) -> str:
    env = Environment(autoescape=True)
    series: dict[str, dict[str, float]] = {}
    channels: dict[str, int] = {}
    for r in doc["sends"]:
        series.setdefault(r["campaign"], {})
        series[r["campaign"]][r["day"]] = series[r["campaign"]].get(r["day"], 0) + r["sent"]
        channels[r["channel"]] = channels.get(r["channel"], 0) + r["sent"]
    spend = {}
    for b in doc["budgets"]:
        per = {p["day"]: float(p["spent"]) for p in b["per_day"]}
        spend[b["campaign"]] = _bars([d[5:] for d in doc["days"]], [per.get(d, 0.0) for d in doc["days"]],
                                     f"{b['campaign']}: spend per day", float(b["daily"]) if b["daily"] else None)
    dist = doc["pressure"]["per_7_days"]["distribution"]
    caps = [c["limit"] for c in doc["pressure"]["caps"] if c["scope"] == "policy" and c["unit"] == "message"
            and c["per"] == "7d"]
    pressure = _bars(list(dist), [float(v) for v in dist.values()], "users by most messages in any 7 days",
                     None) if dist else Markup('<p class="empty">nobody messaged</p>')
    note = Markup(f'<p class="note">policy cap: {min(caps)} messages per user per 7 days</p>') if caps else Markup("")
    return env.from_string(_PAGE).render(doc=doc, sends=_stacked(doc["days"], series, "sent per day by campaign"),
                                         channels=channels, spend=spend, pressure=pressure + note)
