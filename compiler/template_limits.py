"""The budget every template runs under: time, size and call depth, per message, in any thread.

A template is user code. The sandbox keeps it away from Python internals; this module keeps it from
taking a run down: no loop, operator, filter or macro may spend more than RENDER_SECONDS of this
thread's CPU time, build a value of more than MAX_VALUE characters or items, nest calls more than
MAX_DEPTH deep, or produce more than MAX_PRODUCED characters in all (loops, macros, `set` blocks).
No signals are used (Prefect runs tasks in worker threads): the checks sit in the hooks the sandbox
already has (`call`, intercepted operators, the `finalize` of every `{{ }}`), in every filter and in
every `for` loop, which the code generator below routes through `environment.camp_iterate`.

Intercepting `*`, `**`, `%` and `+` also turns off Jinja's constant folding for them, so compiling a
template (which `camp check` does) never evaluates `9**(9**9)`; the folding that remains (filters on
constants) runs through the same bounded filters. `fold_limits` evaluates constant expressions with
the bounded operators so `camp check` can point at the ones that always exceed a limit (E505).
"""

from __future__ import annotations

import operator
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.nodes import EvalContext, Impossible
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter, safe_range
from jinja2.utils import _PassArg
from markupsafe import Markup

RENDER_SECONDS = 0.2  # CPU time of the rendering thread, per template render
CHECK_SECONDS = 0.5  # CPU time `camp check` spends folding one template's constants
MAX_VALUE = 256 * 1024  # characters (or items) of one value an operator, filter or method builds
MAX_PRODUCED = 1024 * 1024  # characters one render may produce in all, counted in loops, macros and blocks
MAX_DEPTH = 40  # nested calls (macros, caller(), recursive loops, methods)
MAX_INT_BITS = 4096  # an integer an operator builds (about 1,233 digits)
MAX_WIDTH = 1024  # a width or precision in a format ("%5d", "{:>8}")
MAX_INT_ARG = 100_000  # an integer argument of a filter (a width, a count); the sandbox's range cap
MAX_SOURCE = 64 * 1024  # characters of a template file
_TICK = 32  # units of work (iterations, calls, filters, operators) between two looks at the clock


class LimitExceeded(Exception):
    """A template went over one of the limits; `what` is "time limit", "size limit" or "recursion limit"."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"{what}: {detail}")
        self.what = what


class _State(threading.local):
    limit: float | None = None  # seconds of this budget; None: no budget (outside a render or a check)
    deadline: float | None = None  # set at the first look at the clock (a cheap render never looks)
    depth = 0
    produced = 0
    ticks = 0


_state = _State()


def enter(seconds: float = RENDER_SECONDS) -> tuple:
    """Start a budget in this thread; returns what `leave` restores (budgets nest)."""
    st = _state
    saved = (st.limit, st.deadline, st.depth, st.produced, st.ticks)
    st.limit, st.deadline, st.depth, st.produced, st.ticks = seconds, None, 0, 0, 0
    return saved


def leave(saved: tuple) -> None:
    st = _state
    st.limit, st.deadline, st.depth, st.produced, st.ticks = saved


@contextmanager
def budget(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Everything a template does inside this block counts against one budget (this thread only)."""
    saved = enter(seconds)
    try:
        yield
    finally:
        leave(saved)


def _tick() -> None:
    """One unit of work (a loop iteration, a call, a filter, an operator); the clock is read every _TICK."""
    st = _state
    st.ticks += 1
    if st.ticks >= _TICK:
        st.ticks = 0
        _clock()


def _clock() -> None:
    st = _state
    if st.limit is None:
        return
    now = time.thread_time()  # this thread's CPU time: other threads and processes do not count
    if st.deadline is None:
        st.deadline = now + st.limit
    elif now > st.deadline:
        raise LimitExceeded("time limit", f"the template ran longer than {st.limit:g} s")


def _produce(n: int) -> None:
    _state.produced += n
    if _state.produced > MAX_PRODUCED:
        raise LimitExceeded("size limit", f"the template produced more than {MAX_PRODUCED} characters")


def _size(n: int, what: str) -> None:
    if n > MAX_VALUE:
        raise LimitExceeded("size limit", f"{what} would be {n} long (the limit is {MAX_VALUE})")


_SIZED = (str, list, tuple, dict, set)
_V = TypeVar("_V")


def _sized(value: _V) -> _V:
    if isinstance(value, _SIZED) and len(value) > MAX_VALUE:
        _size(len(value), "a value")
    return value


# ---------------------------------------------------------------- formats
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?(\d+)?[,_]?(?:\.(\d+))?")


def _check_width(text: str | None, where: str) -> None:
    if text and text.isdigit() and len(text) > 0 and int(text) > MAX_WIDTH:
        raise LimitExceeded("size limit", f"a width of {text} in {where} (the limit is {MAX_WIDTH})")


def check_percent(fmt: str, args) -> None:
    """`"%999999999d" % 1` would build a 1 GB string: widths and precisions are bounded."""
    star = False
    for m in _PERCENT.finditer(fmt):
        for g in m.groups():
            star = star or g == "*"
            _check_width(g, f'"{fmt[:40]}"')
    if star:
        for a in args if isinstance(args, tuple) else (args,):
            if isinstance(a, int) and abs(a) > MAX_WIDTH:
                raise LimitExceeded("size limit", f"a width of {a} given to `*` (the limit is {MAX_WIDTH})")


class _SpecCheck(SandboxedFormatter):
    """Mixed in before SandboxedFormatter or SandboxedEscapeFormatter (the MRO is the same as a bare mixin's)."""

    def format_field(self, value, format_spec: str) -> str:
        m = _SPEC.match(format_spec)
        if m:
            for g in m.groups():
                _check_width(g, f"the format spec {format_spec[:40]!r}")
        return _sized(super().format_field(value, format_spec))


class _Formatter(_SpecCheck, SandboxedFormatter):
    pass


class _EscapeFormatter(_SpecCheck, SandboxedEscapeFormatter):
    pass


# ---------------------------------------------------------------- operators
def _length(v) -> int | None:
    return len(v) if isinstance(v, str | list | tuple) else None


def bounded_binop(op: str, a, b):
    """`*`, `**`, `%` and `+` with their results' sizes known before they are built."""
    if op == "+" and type(a) in _SMALL and type(b) in _SMALL:  # the common case: `i + 1`
        return a + b
    if op == "*":
        for seq, n in ((a, b), (b, a)):
            if _length(seq) is not None and isinstance(n, int):
                _size(len(seq) * max(n, 0), "a repeated text or list")
        if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise LimitExceeded("size limit", f"a product of more than {MAX_INT_BITS} bits")
    elif op == "**":
        if isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0 and \
                (b > MAX_INT_BITS or a.bit_length() * b > MAX_INT_BITS):
            raise LimitExceeded("size limit", f"a power of more than {MAX_INT_BITS} bits")
    elif op == "%":
        if isinstance(a, str):
            check_percent(a, b)
            return _sized(a % b)
    elif op == "+":
        la, lb = _length(a), _length(b)
        if la is not None and lb is not None:
            _size(la + lb, "a concatenation")
    return _BINOPS[op](a, b)


_SMALL = frozenset({int, float, bool})
_BINOPS = {"*": operator.mul, "**": operator.pow, "%": operator.mod, "+": operator.add}


def bounded_concat(parts: tuple) -> str:
    """`a ~ b ~ c`, with the length known before the text is built."""
    texts = [p if isinstance(p, str) else str(p) for p in parts]
    _size(sum(map(len, texts)), "a `~` concatenation")
    return markup_join(texts) if any(isinstance(t, Markup) for t in texts) else str_join(texts)


# ---------------------------------------------------------------- filters and methods
def _estimate(name: str, value, args: tuple, kwargs: dict) -> int | None:
    """The length of what an expanding filter or str method would build; None for the others."""
    def arg(i: int, key: str, default: Any = None) -> Any:
        return args[i] if len(args) > i else kwargs.get(key, default)

    if name == "join":
        sep = arg(0, "d", "")
        return sum(len(str(x)) for x in value) + len(str(sep)) * max(len(value) - 1, 0)
    text = str(value) if not isinstance(value, str) else value
    if name == "replace":
        old, new = str(arg(0, "old", "")), str(arg(1, "new", ""))
        n = text.count(old) if old else len(text) + 1
        count = arg(2, "count")
        if isinstance(count, int) and count >= 0:
            n = min(n, count)
        return len(text) + n * max(len(new) - len(old), 0)
    if name == "indent":
        width = arg(0, "width", 4)
        return len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else int(width or 0))
    if name == "wordwrap":
        width = max(int(arg(0, "width", 79) or 1), 1)
        wrap = arg(2, "wrapstring") or "\n"
        return len(text) + (len(text) // width + text.count("\n") + 1) * len(str(wrap))
    if name == "expandtabs":
        return len(text) + text.count("\t") * int(arg(0, "tabsize", 8))
    if name == "translate":
        table = arg(0, "table", {})
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1) if isinstance(table,
                                                                                                     dict) else 1
        return len(text) * max(longest, 1)
    if name in ("ljust", "rjust", "center", "zfill"):
        width = arg(0, "width", 0)
        return max(len(text), width) if isinstance(width, int) else None
    return None


def _guard_filter(name: str, f):
    skip = 2 if _PassArg.from_obj(f) is not None else 1  # the value (and the context) are not arguments
    expanding = name in ("join", "replace", "indent", "wordwrap", "format", "center")

    @wraps(f)
    def guarded(*args, **kwargs):
        _tick()
        if not expanding and len(args) <= skip and not kwargs:  # the common case: `x | money`
            return _sized(f(*args))
        rest = args[skip:]
        for a in (*rest, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
                raise LimitExceeded("size limit", f"the filter `{name}` got {a} (the limit is {MAX_INT_ARG})")
        if expanding and len(args) >= skip:
            value = args[skip - 1]
            if name == "join":
                value = list(value)
                _size(len(value), "a joined list")
                args = (*args[:skip - 1], value, *rest)
            if name == "format" and isinstance(value, str):
                check_percent(value, kwargs or rest)
            else:
                n = _estimate(name, value, rest, kwargs)
                if n is not None:
                    _size(n, f"the result of `{name}`")
        return _sized(f(*args, **kwargs))

    return guarded


_METHODS = frozenset({"join", "replace", "expandtabs", "translate", "ljust", "rjust", "center", "zfill"})


def _guard_method(method, args: tuple, kwargs: dict) -> tuple:
    """Refuses a str method call whose result would be too long; returns the arguments to call it with
    (an iterable given to `join` is read once, into a list)."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not (isinstance(owner, str) and name in _METHODS):
        return args
    if name == "join" and args:
        items = list(args[0])
        args = (items, *args[1:])
        n = sum(len(str(x)) for x in items) + len(owner) * max(len(items) - 1, 0)
    else:
        n = _estimate(name, owner, args, kwargs)
    if n is not None:
        _size(n, f"the result of `{name}`")
    return args


def _range(*args: int) -> range:
    try:
        return safe_range(*args)
    except OverflowError as exc:
        raise LimitExceeded("size limit", str(exc)) from None


class _Undefined(StrictUndefined):
    """Strict, and never printed as "Undefined" inside a list, a dict or a `%r`."""

    __slots__ = ()
    __repr__ = StrictUndefined._fail_with_undefined_error


def _finalize(value):
    """Every `{{ }}` passes here: None is a missing value (an error, not "None" in a message), and
    what is printed counts against the render's budget."""
    if value is None:
        raise LimitExceeded("missing value", "a value printed by the template is None (missing)")
    text = value if isinstance(value, str) else str(value)
    _produce(len(text))
    return text


# ---------------------------------------------------------------- the environment
class _Generator(CodeGenerator):
    """Routes every `for` loop through `environment.camp_iterate` (which looks at the clock and counts
    the loop body's literal text) and every `~` through `environment.camp_concat`."""

    def visit_For(self, node: nodes.For, frame) -> None:
        literal = sum(len(n.data) for b in node.body for n in b.find_all(nodes.TemplateData))
        original = node.iter
        node.iter = nodes.Call(nodes.EnvironmentAttribute("camp_iterate"), [original, nodes.Const(literal)], [],
                               None, None, lineno=node.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = original

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.camp_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox plus the budget: see the module's docstring."""

    code_generator_class = _Generator
    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **kwargs):
        super().__init__(undefined=_Undefined, finalize=_finalize, **kwargs)
        self.globals.pop("lipsum", None)  # lipsum(100000, max=100000) is 10^10 words; templates do not need it
        self.globals["range"] = _range

    def guard_filters(self) -> None:
        """Wrap every filter (call after adding camp's own)."""
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context, operator: str, left, right):
        _tick()
        return bounded_binop(operator, left, right)

    @staticmethod
    def camp_iterate(items: Iterable, literal: int = 0) -> Iterator:
        for item in items:
            if literal:
                _produce(literal)
            _tick()
            yield item

    @staticmethod
    def camp_concat(parts: tuple) -> str:
        return bounded_concat(parts)

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        f_self = value.__self__
        formatter = _EscapeFormatter(self, escape=f_self.escape) if isinstance(f_self, Markup) else _Formatter(self)
        is_map = value.__name__ == "format_map"

        @wraps(value)
        def bounded(*args, **kwargs):
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                args, kwargs = (), args[0]
            return type(f_self)(formatter.vformat(f_self, args, kwargs))

        return bounded

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (the sandbox's own signature)
        _tick()
        args = _guard_method(__obj, args, kwargs)
        st = _state
        if st.depth >= MAX_DEPTH:
            raise LimitExceeded("recursion limit", f"calls nested more than {MAX_DEPTH} deep")
        st.depth += 1
        try:
            return _sized(super().call(__context, __obj, *args, **kwargs))
        finally:
            st.depth -= 1


# ---------------------------------------------------------------- check time
def fold_limits(env: BoundedEnvironment, tree: nodes.Template) -> list[tuple[int, str]]:
    """(line, message) of every constant expression that always goes over a limit, found by evaluating
    constant sub-expressions with the bounded operators, within CHECK_SECONDS."""
    found: dict[int, str] = {}
    memo: dict[int, object] = {}
    ctx = EvalContext(env)

    def fold(node) -> Any:
        key = id(node)
        if key in memo:
            value = memo[key]
            if isinstance(value, Exception):
                raise value
            return value
        try:
            value = _fold(node)
        except (Impossible, LimitExceeded) as exc:
            memo[key] = exc
            raise
        except Exception:  # noqa: BLE001 (any other failure: not foldable here, the render will say)
            memo[key] = Impossible()
            raise Impossible() from None
        memo[key] = value
        return value

    def _fold(node):
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [fold(i) for i in node.items]
            return items if isinstance(node, nodes.List) else tuple(items)
        if isinstance(node, nodes.Dict):
            return {fold(i.key): fold(i.value) for i in node.items}
        if isinstance(node, nodes.BinExpr) and node.operator in _BINOPS:
            return bounded_binop(node.operator, fold(node.left), fold(node.right))
        if isinstance(node, nodes.Concat):
            return bounded_concat(tuple(fold(n) for n in node.nodes))
        if isinstance(node, nodes.Filter) and node.node is not None and node.name in env.filters:
            f = env.filters[node.name]
            if node.dyn_args or node.dyn_kwargs:
                raise Impossible()
            args = [fold(a) for a in node.args]
            # jinja2 types Filter.kwargs as Pair nodes; they are Keyword nodes, whose key is a str
            kwargs = {k.key: fold(k.value) for k in node.kwargs}
            pass_arg = _PassArg.from_obj(f)
            lead = [] if pass_arg is None else [ctx] if pass_arg is _PassArg.eval_context else \
                [env] if pass_arg is _PassArg.environment else None
            if lead is None:
                raise Impossible()
            return f(*lead, fold(node.node), *args, **kwargs)  # pyright: ignore[reportCallIssue]
        if not isinstance(node, nodes.Call) or node.kwargs or node.dyn_args or node.dyn_kwargs:
            return node.as_const(ctx)
        if isinstance(node.node, nodes.Name) and node.node.name == "range":
            return _range(*[fold(a) for a in node.args])
        if isinstance(node.node, nodes.Getattr) and (node.node.attr in _METHODS or node.node.attr == "format"):
            text = fold(node.node.node)
            if not isinstance(text, str):
                raise Impossible()
            method = getattr(text, node.node.attr)
            method = env.wrap_str_format(method) or method
            args = tuple(fold(a) for a in node.args)
            return _sized(method(*_guard_method(method, args, {})))
        return node.as_const(ctx)

    with budget(CHECK_SECONDS):
        for node in tree.find_all((nodes.BinExpr, nodes.Filter, nodes.Call, nodes.Concat)):
            try:
                fold(node)
            except LimitExceeded as exc:
                found.setdefault(node.lineno, str(exc))
                if exc.what == "time limit":
                    break
            except Impossible:
                continue
    return sorted(found.items())
