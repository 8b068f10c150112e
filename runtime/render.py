"""Decision + recipient + plan -> message text, through the one sandboxed, strict Jinja2 environment.

Templates come from the plan (their source is part of it and of its hash), are compiled once per
run, and see only what docs/language.md lists: user, campaign, step, variant, coupon, points,
red_packet. A missing user field is an error for that user (strict undefined), never "None" in a
message; the sandbox refuses attribute access to Python internals.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Template, TemplateError
from jinja2.exceptions import SecurityError

from compiler.plan import ChannelPlan, StepPlan
from compiler.program import MoneyAmount
from compiler.templates import make_environment

MAX_MESSAGE = 64 * 1024  # characters; a longer message is a template bug (or an attack), not a message


class RenderError(Exception):
    pass


class Renderer:
    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.env = make_environment()
        self._cache: dict[str, Template] = {}

    def _template(self, source: str) -> Template:
        t = self._cache.get(source)
        if t is None:
            t = self._cache[source] = self.env.from_string(source)
        return t

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
                ctx["red_packet"] = {"name": r.code, "title": r.title or r.code,
                                     "value": MoneyAmount(r.value, r.currency or p.currency)}
        if coupon is not None:
            ctx["coupon"] = coupon
        return ctx

    def render(self, ch: ChannelPlan, ctx: dict) -> tuple[str | None, str]:
        """(subject, body) of one message; RenderError says why the template could not be rendered."""
        try:
            body = self._template(ch.template_source).render(ctx) if ch.template_source else \
                f"{self.plan.title or self.plan.campaign}"
            subject = self._template(ch.subject).render(ctx) if ch.subject else None
        except SecurityError as exc:
            raise RenderError(f"template {ch.template}: blocked by the sandbox: {exc}") from None
        except TemplateError as exc:
            raise RenderError(f"template {ch.template}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise RenderError(f"template {ch.template}: {type(exc).__name__}: {exc}") from None
        except MemoryError:
            raise RenderError(f"template {ch.template}: the message does not fit in memory") from None
        if len(body) > MAX_MESSAGE or (subject and len(subject) > MAX_MESSAGE):
            raise RenderError(f"template {ch.template}: the message is longer than {MAX_MESSAGE} characters")
        return subject, body


def coupon_context(row: dict, plan: StepPlan) -> dict:
    """What templates see of an issued coupon (money as MoneyAmount, times in the workspace zone)."""
    tz = ZoneInfo(plan.timezone)
    r = plan.resources[row["name"]]

    def local(t: datetime | None):
        return t.astimezone(tz) if t else None

    return {"id": row["coupon_id"], "code": r.code, "title": r.title or r.code,
            "value": MoneyAmount(r.value, r.currency or plan.currency),
            "min_spend": MoneyAmount(r.min_spend, r.currency or plan.currency) if r.min_spend is not None else None,
            "issued_at": local(row["issued_at"]), "usable_from": local(row["usable_from"]),
            "usable_to": local(row["usable_to"]), "expires_at": local(row["usable_to"])}
