"""Decision + recipient + plan -> message text, through the one sandboxed, strict Jinja2 environment.

Templates come from the plan (their source is part of it and of its hash), are compiled once per
run, and see only what docs/language.md lists: user, campaign, step, variant, coupon, points,
red_packet. A missing user field is an error for that user (strict undefined), never "None" in a
message; the sandbox refuses attribute access to Python internals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Template, TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from compiler.plan import ChannelPlan, StepPlan
from compiler.program import MoneyAmount
from compiler.template_limits import MAX_SOURCE, LimitExceeded, enter, leave
from compiler.templates import make_environment, template_reads

MAX_MESSAGE = 64 * 1024  # characters; a longer message is a template bug (or an attack), not a message


class RenderError(Exception):
    """Why one message could not be rendered; `reason` is the short form the ledger records
    (`template: time limit`, `template: recursion limit`, `template: size limit`, `template: missing value`,
    `template: blocked by the sandbox`, `template: error`)."""

    def __init__(self, message: str, reason: str = "template: error"):
        super().__init__(message)
        self.reason = reason


_MISSING = object()
_NO_ROOT = object()
_MEMO_LIMIT = 200_000  # rendered texts kept per template


def _memo_key_of(source: str) -> tuple[tuple[str, str], ...] | None:
    """The `x.attr` pairs the output depends on; None when it depends on more (memoising is off)."""
    reads = template_reads(source)
    return None if reads.opaque or reads.whole else reads.pairs


class Renderer:
    """Renders a plan's templates. A template that only reads `x.attr` values is rendered once per
    distinct combination of those values (the same inputs give the same text: the sandbox has no side
    effects); one that reads more is rendered for every message."""

    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.env = make_environment()
        self._cache: dict[str, tuple[Template, tuple | None, dict, Callable[[_UserContext], tuple]]] = {}

    def _template(self, source: str) -> tuple[Template, tuple | None, dict, Callable[[_UserContext], tuple]]:
        t = self._cache.get(source)
        if t is None:
            reads = _memo_key_of(source)
            t = self._cache[source] = (self.env.from_string(source), reads, {}, _user_key(reads or ()))
        return t

    def _render(self, source: str, ctx: dict | _UserContext) -> str:
        if len(source) > MAX_SOURCE:
            raise LimitExceeded("size limit", f"the template is longer than {MAX_SOURCE} characters")
        template, reads, memo, user_key = self._template(source)
        if reads is None:
            return _bounded(template, _full(ctx))
        key = tuple(_read(ctx, root, attr) for root, attr in reads) if isinstance(ctx, dict) else user_key(ctx)
        try:
            text = memo.get(key)
        except TypeError:  # an unhashable value
            return _bounded(template, _full(ctx))
        if text is None:
            text = _bounded(template, _full(ctx))
            if len(memo) < _MEMO_LIMIT:
                memo[key] = text
        return text

    def user_context(self, user_id: str, fields: dict, arm: str | None, coupon: dict | None) -> _UserContext:
        """`context(...)` of one user, built only when a template must be rendered: a memoised template's key is
        made from the user's fields, id, arm and coupon (`_user_key`)."""
        return _UserContext(self, user_id, fields, arm, coupon)

    def context(self, user_id: str, fields: dict, arm: str | None, coupon: dict | None) -> dict:
        p = self.plan
        user = {k: v for k, v in fields.items() if v is not None}
        user["id"] = user_id
        ctx = {"user": user, "campaign": {"name": p.campaign, "title": p.title or p.campaign, "owner": p.owner},
               "step": {"name": p.step}}
        if p.arms[0].kind == "variant":
            ctx["variant"] = {"name": arm}
        for r in p.resources.values():
            if r.kind == "points":
                ctx["points"] = {"amount": r.value}
            elif r.kind == "red_packet":
                assert r.value is not None  # a red packet without a value does not compile (E214)
                ctx["red_packet"] = {"name": r.code, "title": r.title or r.code,
                                     "value": MoneyAmount(r.value, r.currency or p.currency)}
        if coupon is not None:
            ctx["coupon"] = coupon
        return ctx

    def render(self, ch: ChannelPlan, ctx: dict | _UserContext) -> tuple[str | None, str]:
        """(subject, body) of one message; RenderError says why the template could not be rendered."""
        name = ch.template
        try:
            body = self._render(ch.template_source, ctx) if ch.template_source else \
                f"{self.plan.title or self.plan.campaign}"
            subject = self._render(ch.subject, ctx) if ch.subject else None
        except LimitExceeded as exc:
            raise RenderError(f"template {name}: {exc}", f"template: {exc.what}") from None
        except RecursionError:
            raise RenderError(f"template {name}: recursion limit: the template recursed too deep",
                              "template: recursion limit") from None
        except SecurityError as exc:
            raise RenderError(f"template {name}: blocked by the sandbox: {exc}",
                              "template: blocked by the sandbox") from None
        except UndefinedError as exc:
            raise RenderError(f"template {name}: missing value: {exc}", "template: missing value") from None
        except MemoryError:
            raise RenderError(f"template {name}: size limit: the message does not fit in memory",
                              "template: size limit") from None
        except Exception as exc:  # noqa: BLE001 (a template is user code: whatever it raises fails this message only)
            kind = "" if isinstance(exc, TemplateError) else f"{type(exc).__name__}: "
            raise RenderError(f"template {name}: {kind}{exc}") from None
        return subject, body


class _UserContext:
    """One user's template context, its parts kept apart until the whole is needed (Renderer.user_context)."""

    __slots__ = ("coupon", "renderer", "user_id", "fields", "arm", "_whole")

    def __init__(self, renderer: Renderer, user_id: str, fields: dict, arm: str | None, coupon: dict | None):
        self.renderer, self.user_id, self.fields, self.arm, self.coupon = renderer, user_id, fields, arm, coupon
        self._whole: dict | None = None

    def whole(self) -> dict:
        if self._whole is None:
            self._whole = self.renderer.context(self.user_id, self.fields, self.arm, self.coupon)
        return self._whole


_USER_KEY = object()  # heads a key made by `_user_key`, so it never equals one read from a whole context


def _user_key(reads: tuple[tuple[str, str], ...]) -> Callable[[_UserContext], tuple]:
    """A function of a user's context giving a memo key that determines `_read(whole, root, attr)` for every read
    (so equal keys render equal texts) without building the whole context: the user's fields read (None for one
    missing, which `_read` gives as _MISSING), their id if read, the arm (which fixes every other part but the coupon:
    campaign, step, variant, points, red packet) and the coupon's attributes read (_NO_ROOT without a coupon)."""
    attrs = tuple(a for root, a in reads if root == "user" and a != "id")
    by_id = ("user", "id") in reads
    by_arm = any(root not in ("user", "coupon") for root, _ in reads)
    coupon = tuple(a for root, a in reads if root == "coupon")

    def key(ctx: _UserContext) -> tuple:
        c = ctx.coupon
        held = (_NO_ROOT if not isinstance(c, dict) else tuple([c.get(a, _MISSING) for a in coupon])) if coupon \
            else None
        return (_USER_KEY, tuple(map(ctx.fields.get, attrs)), ctx.user_id if by_id else None,
                ctx.arm if by_arm else None, held)
    return key


def _read(ctx: dict, root: str, attr: str):
    """The value of `root.attr` in a template context, as a memo key part: _MISSING when `root` has no `attr`,
    _NO_ROOT when there is no `root` (`coupon.code | default('-')` renders for a coupon without a code, and fails
    for a user without a coupon: two keys)."""
    part = ctx.get(root)
    return part.get(attr, _MISSING) if isinstance(part, dict) else _NO_ROOT


def _full(ctx: dict | _UserContext) -> dict:
    return ctx if isinstance(ctx, dict) else ctx.whole()


def _bounded(template: Template, ctx: dict) -> str:
    """Render within the budget (compiler/template_limits.py). What a render can produce is bounded by
    the budget (every printed value and every loop's literal text count), so the length is checked after."""
    saved = enter()
    try:
        text = template.render(ctx)
    finally:
        leave(saved)
    if len(text) > MAX_MESSAGE:
        raise LimitExceeded("size limit", f"the message is longer than {MAX_MESSAGE} characters")
    return text


def coupon_context(row: dict, plan: StepPlan) -> dict:
    """What templates see of an issued coupon (money as MoneyAmount, times in the workspace zone)."""
    tz = ZoneInfo(plan.timezone)
    r = plan.resources.get(row["name"]) if row.get("name") else None

    def local(t: datetime | None):
        return t.astimezone(tz) if isinstance(t, datetime) else None

    if r is None:  # a coupon of a resource this plan does not define (an earlier version): what the row says
        return {"id": row["coupon_id"], "issued_at": local(row["issued_at"]), "usable_from": local(row["usable_from"]),
                "usable_to": local(row["usable_to"]), "expires_at": local(row["usable_to"])}
    assert r.value is not None  # a coupon without a value does not compile (E214)
    return {"id": row["coupon_id"], "code": r.code, "title": r.title or r.code,
            "value": MoneyAmount(r.value, r.currency or plan.currency),
            "min_spend": MoneyAmount(r.min_spend, r.currency or plan.currency) if r.min_spend is not None else None,
            "issued_at": local(row["issued_at"]), "usable_from": local(row["usable_from"]),
            "usable_to": local(row["usable_to"]), "expires_at": local(row["usable_to"])}
