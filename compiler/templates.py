"""Templates: the one sandboxed Jinja2 environment camp renders with, and the static check
that a template reads only variables camp provides (inspecting the Jinja2 AST, before anything runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes

from compiler.report import Report, did_you_mean, suggest
from compiler.template_limits import MAX_SOURCE, BoundedEnvironment, fold_limits
from dsl.span import Span

_CURRENCY_SIGNS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

COUPON_FIELDS = {"code", "title", "value", "min_spend", "issued_at", "expires_at", "usable_from", "usable_to", "id"}
POINTS_FIELDS = {"amount"}
PACKET_FIELDS = {"name", "title", "value", "id"}
CAMPAIGN_FIELDS = {"name", "title", "owner"}
STEP_FIELDS = {"name"}
VARIANT_FIELDS = {"name"}


def format_date(value: date | datetime | None, fmt: str = "%Y-%m-%d") -> str:
    if value is None:
        return ""
    return value.strftime(fmt)


def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "" if value is None else value.strftime(fmt)


def format_money(value, currency: str | None = None, sign: bool = True) -> str:
    """`{{ coupon.value | money }}` -> ¥20.00; values may be Decimal or {amount, currency}."""
    if isinstance(value, dict):
        currency = currency or value.get("currency")
        value = value.get("amount")
    elif hasattr(value, "currency") and hasattr(value, "amount"):  # compiler.program.MoneyAmount
        currency = currency or value.currency
        value = value.amount
    if value is None:
        return ""
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    if sign and currency in _CURRENCY_SIGNS:
        return f"{_CURRENCY_SIGNS[currency]}{amount}"
    return f"{amount} {currency}".strip()


def make_environment(template_dir: Path | None = None) -> BoundedEnvironment:
    """Sandboxed (no access to Python internals), strict (an undefined variable is an error, and so is
    printing None), bounded (time, size and call depth: compiler/template_limits.py)."""
    from jinja2 import FileSystemLoader

    env = BoundedEnvironment(
        autoescape=False, keep_trailing_newline=False,
        loader=FileSystemLoader(str(template_dir)) if template_dir else None,
    )
    # jinja2 infers `filters` from its built-in filters' decorated types; any callable is a filter
    env.filters.update(date=format_date, datetime=format_datetime, money=format_money)  # pyright: ignore[reportArgumentType]
    env.guard_filters()
    return env


_ENV = None


def _env() -> BoundedEnvironment:
    global _ENV
    if _ENV is None:
        _ENV = make_environment()
    return _ENV


@dataclass(frozen=True)
class Reads:
    """What a template reads: `x.attr` pairs, variables read whole, and whether it calls anything or
    uses `random` (then its output is not a function of what it reads)."""

    pairs: tuple[tuple[str, str], ...]
    whole: frozenset[str]
    opaque: bool


@lru_cache(maxsize=1024)
def template_reads(source: str) -> Reads:
    """The planner selects the user fields from it, the renderer memoises on it."""
    tree = _env().parse(source)
    opaque = any(n.name == "random" for n in tree.find_all(nodes.Filter)) or \
        any(not (isinstance(c.node, nodes.Name) and c.node.name in _PURE) for c in tree.find_all(nodes.Call))
    pairs, inner = set(), set()
    for n in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = n.attr if isinstance(n, nodes.Getattr) else getattr(n.arg, "value", None)
        if isinstance(n.node, nodes.Name) and isinstance(attr, str):
            pairs.add((n.node.name, attr))
            inner.add(id(n.node))
    # names the context gives (Jinja's own scoping: a loop's or a set's variable is the template's own)
    given = meta.find_undeclared_variables(tree) - _PURE
    whole = frozenset(n.name for n in tree.find_all(nodes.Name)
                      if id(n) not in inner and n.ctx == "load" and n.name in given)
    return Reads(tuple(sorted(pairs)), whole, opaque)


_PURE = frozenset({"range"})  # globals whose call is a function of its arguments (memoising stays on)


MAX_TEMPLATE_NAME = 1024  # bytes of the whole name; each part is a file name, at most 255 bytes on common file systems


def template_name_problem(name: str) -> tuple[str, str] | None:
    """Why `name` cannot name a template file (message, hint), or None. Checked before the file system
    sees the name: a NUL, a lone surrogate or a 300-byte part makes `open` raise instead of answer."""
    bad = next((c for c in name if ord(c) < 0x20 or ord(c) == 0x7F or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        return (f"the template name contains the character U+{ord(bad):04X}, which a file name cannot hold",
                "template names are file paths under the template folder, like \"winback/push.j2\"")
    size = len(name.encode("utf-8"))
    if size > MAX_TEMPLATE_NAME:
        return (f"the template name is {size:,} bytes long; at most {MAX_TEMPLATE_NAME:,} are possible",
                "name the file shortly, like \"winback/push.j2\"")
    long_part = next((p for p in name.split("/") if len(p.encode("utf-8")) > 255), None)
    if long_part is not None:
        return (f"`{long_part[:20]}…` is {len(long_part.encode('utf-8')):,} bytes long; a file name may have at most 255",
                "name the file shortly, like \"winback/push.j2\"")
    return None


def resolve_template(template_dir: Path, name: str) -> Path | None:
    """The template's path, or None when the name leaves the template folder."""
    base = template_dir.resolve()
    path = (base / name).resolve()
    if base != path and base not in path.parents:
        return None
    return path


@dataclass(frozen=True)
class _Analysis:
    """What a template uses, read once per file however many campaigns use it."""

    error: tuple[str, str, int] | None  # (code, message, line)
    undeclared: frozenset[str] = frozenset()
    names: tuple[tuple[str, int], ...] = ()  # (name, line) of every variable read
    attrs: tuple[tuple[str, str, int], ...] = ()  # (root, attribute, line)
    bad_filters: tuple[tuple[str, str, int], ...] = ()  # (kind, name, line)
    private: tuple[tuple[str, int], ...] = ()  # (attribute, line): `_x` / `__class__`, which the sandbox refuses
    limits: tuple[tuple[int, str], ...] = ()  # (line, message): constant expressions over a render limit


@lru_cache(maxsize=4096)
def _analyse(path: Path, stamp: tuple[int, int]) -> tuple[str | None, _Analysis]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, _Analysis(("E502", f"cannot read the template: {exc}", 1))
    if len(text) > MAX_SOURCE:
        return text, _Analysis(("E505", f"the template is {len(text)} characters long; the limit is {MAX_SOURCE}", 1))
    env = _env()
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        return text, _Analysis(("E502", f"the template does not parse: {exc.message}", exc.lineno or 1))
    except RecursionError:
        return text, _Analysis(("E502", "the template nests too deeply to parse", 1))
    limits = tuple(fold_limits(env, tree))
    bad = tuple((kind, n.name, n.lineno) for kind, cls, known in (("filter", nodes.Filter, env.filters),
                                                                   ("test", nodes.Test, env.tests))
                for n in tree.find_all(cls) if n.name not in known)
    if bad:  # the variable analysis compiles the template, which needs every filter
        return text, _Analysis(None, bad_filters=bad, limits=limits)
    try:
        undeclared = frozenset(meta.find_undeclared_variables(tree))
    except RecursionError:
        return text, _Analysis(("E502", "the template nests too deeply to compile", 1))
    except TemplateError as exc:
        return text, _Analysis(("E502", f"the template does not compile: {exc}", getattr(exc, "lineno", 1) or 1))
    names = tuple((n.name, n.lineno) for n in tree.find_all(nodes.Name) if n.name in undeclared)
    private = tuple((a, n.lineno) for n in tree.find_all((nodes.Getattr, nodes.Getitem))
                    if isinstance(a := n.attr if isinstance(n, nodes.Getattr) else getattr(n.arg, "value", None), str)
                    and a.startswith("_"))
    private += tuple((n.args[0].value, n.lineno) for n in tree.find_all(nodes.Filter)
                     if n.name == "attr" and n.args and isinstance(n.args[0], nodes.Const)
                     and str(n.args[0].value).startswith("_"))
    attrs = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not (isinstance(base, nodes.Name) and base.name in undeclared):
            continue
        attr = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None)
        if attr is not None:
            attrs.append((base.name, attr, node.lineno))
    return text, _Analysis(None, undeclared, names, tuple(attrs), private=private, limits=limits)


_TEMPLATE_ERROR_HINTS = {
    "cannot read the template": "templates are UTF-8 text files; check the file and its permissions",
    "the template does not parse": "Jinja2: `{{ user.name }}` prints a value, `{% if x %}...{% endif %}` decides; "
                                   "every `{{`, `{%` and block needs its closing part",
    "the template does not compile": "Jinja2: `{{ user.name }}` prints a value, `{% if x %}...{% endif %}` decides",
}


def check_template(path: Path, shown: str, provided: dict[str, set[str]], report: Report,
                   sources: dict[str, str], why: str) -> None:
    """Report E502-E505 for the template at `path`; `provided` maps each root variable to its fields."""
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    text, a = _analyse(path, stamp)
    if text is not None:
        sources[shown] = text
    if a.error is not None:
        code, message, line = a.error
        report(code, message, Span.point(line, 1), [_TEMPLATE_ERROR_HINTS.get(message.split(":")[0], "")], file=shown)
        return
    for line, message in a.limits:
        report("E505", f"this expression always goes over a template limit ({message})", Span.point(line, 1),
               ["templates render within a time, size and depth budget per message (docs/runtime.md, Templates at "
                "run time); make the value smaller"], file=shown)
    for kind, name, line in a.bad_filters:
        known = _env().filters if kind == "filter" else _env().tests
        report("E504", f"the template uses the {kind} `{name}`, which the sandbox does not provide",
               Span.point(line, 1), [suggest(name, known, f"{kind}s")], file=shown)
    for attr, line in a.private:
        report("E503", f"the template reads `{attr}`: names starting with `_` are Python internals, which templates "
                       "cannot reach", Span.point(line, 1), ["use the fields camp provides (docs/language.md, Templates)"],
               file=shown)
    for name in sorted(a.undeclared - set(provided)):
        line = next((ln for n, ln in a.names if n == name), 1)
        report("E503", f"the template uses `{name}`, which camp does not provide {why}", Span.point(line, 1),
               [did_you_mean(name, provided) or f"available: {', '.join(sorted(provided))}"], file=shown)
    for root, attr, line in a.attrs:
        if root in provided and attr not in provided[root]:
            report("E503", f"the template reads `{root}.{attr}`, which {root} does not have {why}",
                   Span.point(line, 1), [suggest(attr, provided[root], f"{root} provides", f"`{root}.{{}}`")], file=shown)
