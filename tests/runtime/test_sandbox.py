"""Templates cannot reach Python internals: each known escape is refused by the sandbox at render time
(the delivery fails with the reason, nothing leaks into a message), and most are already caught by
`camp check` before anything runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from compiler.plan import ArmPlan, ChannelPlan, StepPlan
from runtime.render import Renderer, RenderError

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ user.__class__.__init__.__globals__ }}",
    "{{ campaign.items.__self__.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ user.id.__class__.__base__.__subclasses__() }}",
    "{{ (user.items()|list)[0].__class__ }}",
    "{{ campaign.update(name='x') }}",
    "{{ ''.format.__globals__ }}",
    "{{ range.__call__.__globals__ }}",
    "{% set x = user.__dict__ %}{{ x }}",
    "{{ user|attr('__class__') }}",
    "{{ coupon.value.__class__.__module__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ 'a' * 100000000 }}",
]


def _plan(source: str) -> StepPlan:
    return StepPlan(workspace="t", timezone="UTC", currency="CNY", campaign="c", step="s", occurrence="o",
                    audience_as_of=datetime(2026, 1, 1, tzinfo=UTC), dialect="duckdb", recipients_sql="",
                    user_fields={"name": "text"}, tz_field=None, labels=[], consent_channels=None,
                    holdout=Decimal(0), arms=[ArmPlan(kind="all", name="all", notify=[
                        ChannelPlan(channel="push", template="t.j2", template_source=source)])],
                    resources={}, caps=[], quiet=[], priority=0)


@pytest.mark.parametrize("source", ESCAPES)
def test_an_escape_attempt_is_refused_and_leaks_nothing(source):
    plan = _plan(source)
    r = Renderer(plan)
    from compiler.program import MoneyAmount

    ctx = r.context("7", {"name": "张伟"}, "all", {"value": MoneyAmount(Decimal(10), "CNY")})
    try:
        _, body = r.render(plan.arms[0].notify[0], ctx)
    except RenderError as exc:
        assert "template t.j2" in str(exc)
        return
    for leak in ("<class", "function", "module", "os.", "uid=", "builtins", "subprocess", "__"):
        assert leak not in body, body


def test_strict_undefined_fails_the_message_instead_of_printing_none():
    plan = _plan("{{ user.city }}的朋友")
    r = Renderer(plan)
    with pytest.raises(RenderError, match="city"):
        r.render(plan.arms[0].notify[0], r.context("7", {"name": "x", "city": None}, "all", None))
    ok = _plan("{{ user.name | default('朋友') }}")
    r2 = Renderer(ok)
    assert r2.render(ok.arms[0].notify[0], r2.context("7", {"name": None}, "all", None))[1] == "朋友"


def test_camp_check_refuses_the_attempts_before_anything_runs(tmp_path):
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from tests.runtime.conftest import make_workspace

    files = {f"e{i}.camp": f'campaign e{i} {{\n  who city = "x"\n  where push template "e{i}.j2"\n  how\n'
                           f'    step s: notify where\n}}\n' for i in range(len(ESCAPES))}
    root = make_workspace(tmp_path / "ws", files, templates={f"e{i}.j2": s for i, s in enumerate(ESCAPES)})
    result = check_workspace(load_workspace(root))
    flagged = {d.file.rsplit("/", 1)[-1] for d in result.errors if d.code in ("E502", "E503", "E504", "E505")}
    caught = [s for i, s in enumerate(ESCAPES) if f"e{i}.j2" in flagged]
    missed = [s for s in ESCAPES if s not in caught]
    assert missed == [], missed  # the size bomb is E505: a constant over the size limit


def test_memoised_renders_equal_plain_renders():
    """A template that reads only `x.attr` values is rendered once per distinct combination of them, whether it
    is given the whole context or a user's context built only on a miss (`user_context`, what runs use)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.profiles import examples

    sources = ["{{ user.name | default('朋友') }}，{{ campaign.title }}", "{{ user.id }}-{{ user.city }}",
               "{% if user.city == '北京' %}京{% else %}{{ user.name }}{% endif %}", "{{ user.items() | list }}",
               "{% for k in [1, 2] %}{{ k }}{{ user.name }}{% endfor %}",
               "{{ coupon.code | default('-') }} {{ step.name }} {{ campaign.name }}",
               "{{ user.tags | default([]) | join(',') }}", "{{ user | length }}{{ user.name }}",
               # loops over range and the template's own variables keep memoising on (the bundled newsletter)
               "{{ user.name | default('您好') }}，今日精选。\n{% for i in range(3) %}- 推荐 {{ i + 1 }}\n{% endfor %}",
               "{% for user in ['a'] %}{{ user }}{% endfor %}{{ user.name }}", "{% set n = user.city %}{{ n }}{{ n }}",
               "{% for i in range(user.id | length) %}{{ i }}{{ loop.index }}{% endfor %}"]
    plans = [_plan(src) for src in sources]
    from runtime.render import _memo_key_of

    memoised = [sources[-4], *sources[-2:]]  # each was rendered for every user before (a shadowing loop still is)
    assert all(_memo_key_of(src) is not None for src in memoised)

    @settings(max_examples=examples(150), deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.sampled_from(["张伟", "Emma", None]),
                              st.sampled_from(["北京", "上海", None]), st.sampled_from([None, "x9", "1"]),
                              st.sampled_from([None, ["a"], ["a", "b"]]),
                              st.sampled_from([None, {"code": "C1"}, {"name": "n"}])), min_size=1, max_size=12))
    def check(users):
        for plan in plans:
            r, lazy = Renderer(plan), Renderer(plan)
            ch = plan.arms[0].notify[0]
            for uid, name, city, own_id, tags, coupon in users:
                fields = {"name": name, "city": city, **({"id": own_id} if own_id else {}),
                          **({"tags": tags} if tags else {})}
                ctx = r.context(uid, fields, "all", coupon)
                try:
                    plain = r.env.from_string(ch.template_source).render(ctx)
                except Exception:  # noqa: BLE001 (then the memoised renders must fail too)
                    with pytest.raises(RenderError):
                        r.render(ch, ctx)
                    with pytest.raises(RenderError):
                        lazy.render(ch, lazy.user_context(uid, fields, "all", coupon))
                    continue
                assert r.render(ch, ctx)[1] == plain
                assert lazy.render(ch, lazy.user_context(uid, fields, "all", coupon))[1] == plain

    check()


# Template bombs (issue 10): each ends within 2 s at render (a failed delivery with the limit as its reason)
# and at check (a located E505 when a constant expression always goes over a limit; otherwise check passes
# and the render-time budget stops it).
BOMBS = [  # (template, reason at render or None when harmless, what camp check says: E505 if True)
    ('{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}', "template: recursion limit", False),
    ('{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(30) }}',
     "template: time limit", False),
    ('{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}', "template: recursion limit", False),
    ('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}', "template: time limit", False),
    ('{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}',
     ("template: size limit", "template: time limit"), False),  # whichever comes first on this machine
    ('{{ "x" * 10**9 }}', "template: size limit", True),
    ("{{ 'a' * 100000000 }}", "template: size limit", True),
    ('{{ "%999999999d" % 1 }}', "template: size limit", True),
    ('{{ "%*d" % (999999999, 1) }}', "template: size limit", True),
    ('{{ "%999999999d"|format(1) }}', "template: size limit", True),
    ('{% if false %}{{ 9**(9**9) }}{% endif %}ok', None, True),
    ('{{ 9**(9**9) }}', "template: size limit", True),
    ('{{ 10**4000 }}', "template: size limit", True),
    ('{{ range(10**9)|list }}', "template: size limit", True),
    ('{{ range(100000)|join("x" * 60000) }}', "template: size limit", True),
    ('{{ "{:999999999}".format(1) }}', "template: size limit", True),
    ('{{ "{:{}}".format(1, 999999999) }}', "template: size limit", True),
    ('{{ "x"|center(999999999) }}', "template: size limit", True),
    ('{{ ("x" * 60000).replace("", "y" * 60000) }}', "template: size limit", True),
    ('{{ ("x" * 60000)|replace("", "y" * 60000) }}', "template: size limit", True),
    ('{{ ("x" * 200000)|wordwrap(1, wrapstring="y" * 60000) }}', "template: size limit", True),
    ('{{ ("\t" * 100000).expandtabs(100000) }}', "template: size limit", True),
    ('{{ ("a" * 100000).translate({97: "b" * 1000}) }}', "template: size limit", True),
    ('{{ ("x" * 200000) ~ ("x" * 200000) }}', "template: size limit", True),
    ('{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
     "template: size limit", False),
    ('{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}',
     "template: size limit", False),
    ('{% for i in range(100000) %}{{ "x" * 60000 }}{% endfor %}', "template: size limit", False),
    ('{% macro m() %}{% for i in range(100000) %}{{ "x" * 60000 }}{% endfor %}{% endmacro %}{{ m()|length }}',
     "template: size limit", False),
    ('{% set s %}{% for i in range(100000) %}' + "y" * 60000 + '{% endfor %}{% endset %}{{ s|length }}',
     "template: size limit", False),
    ('{{ [user.nope] }}', "template: missing value", "E503"),  # printed "[Undefined]" before
    ('{{ user.get("nope") }}', "template: missing value", "E503"),  # printed "None" before
]


@pytest.mark.parametrize("source,reason,flagged", BOMBS, ids=[str(i) for i in range(len(BOMBS))])
def test_a_template_bomb_fails_its_message_within_2s(source, reason, flagged):
    plan = _plan(source)
    r = Renderer(plan)
    ctx = r.context("7", {"name": "张伟"}, "all", None)
    t0 = time.monotonic()
    try:
        _, body = r.render(plan.arms[0].notify[0], ctx)
    except RenderError as exc:
        assert time.monotonic() - t0 < 2
        assert exc.reason in ((reason,) if isinstance(reason, str) else reason), (exc.reason, str(exc))
        assert "template t.j2" in str(exc)
        return
    assert time.monotonic() - t0 < 2
    assert reason is None, body[:200]
    assert body == "ok"


def test_camp_check_ends_within_2s_on_every_bomb_and_locates_the_constant_ones(tmp_path):
    """`camp check` as a process over a workspace holding every bomb (each template in its own campaign):
    the whole check ends within 2 s of its own start-up cost, E505 points at the line of each constant bomb,
    no traceback."""
    import json
    import subprocess
    import sys

    from tests.runtime.conftest import make_workspace

    files = {f"b{i}.camp": f'campaign b{i} {{\n  who city = "x"\n  when daily at 10:00\n  where push template '
                           f'"b{i}.j2"\n  how\n    step s: notify where\n}}\n' for i in range(len(BOMBS))}
    templates = {f"b{i}.j2": "{{ user.name }}\n" + s for i, (s, _, _) in enumerate(BOMBS)}  # the bomb on line 2
    root = make_workspace(tmp_path / "ws", files, templates=templates)
    empty = make_workspace(tmp_path / "empty", {})

    def check(path):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "camp", "check", str(path), "--format", "json"],
                           capture_output=True, text=True, timeout=120)
        return r, time.monotonic() - t0

    base, startup = check(empty)
    assert base.returncode == 0, base.stdout + base.stderr
    r, took = check(root)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stdout + r.stderr
    assert took - startup < 2, (took, startup)
    diags = json.loads(r.stdout)
    diags = diags["diagnostics"] if isinstance(diags, dict) else diags
    found = {(d["file"].rsplit("/", 1)[-1], d["code"]) for d in diags}
    expected = {(f"b{i}.j2", "E505" if flag is True else flag) for i, (_, _, flag) in enumerate(BOMBS) if flag}
    assert found == expected, found ^ expected
    assert all(d["line"] == 2 and d["column"] >= 1 for d in diags), diags
