"""Schema declarations (users, events, tags, consent) -> Schema: the data audiences may talk about."""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler import types as T
from compiler.report import Report
from dsl import ast as A
from dsl.span import Span

RESERVED_EVENT_FIELDS = {"time", "user"}


@dataclass(frozen=True)
class Field:
    name: str
    column: str
    type: T.Type
    pii: bool = False
    tz: bool = False


@dataclass
class Users:
    table: str
    key: str
    fields: dict[str, Field]

    @property
    def tz_field(self) -> Field | None:
        return next((f for f in self.fields.values() if f.tz), None)


@dataclass
class Event:
    name: str
    table: str
    user_column: str
    time_column: str
    fields: dict[str, Field]

    def field(self, name: str) -> Field | None:
        if name == "time":
            return Field("time", self.time_column, T.TIMESTAMP)
        return self.fields.get(name)


@dataclass(frozen=True)
class Link:
    """tags / consent: a table of (user, value) rows."""

    table: str
    user_column: str
    value_column: str


@dataclass
class Schema:
    users: Users | None = None
    events: dict[str, Event] = field(default_factory=dict)
    tags: Link | None = None
    consent: Link | None = None
    origins: dict[str, tuple[str, Span]] = field(default_factory=dict)


def _type(spec: A.TypeSpec, report: Report) -> T.Type:
    if spec.name == "money":
        return T.money(spec.currency or "")
    if spec.name == "enum":
        seen = set()
        for v in spec.values:
            if v in seen:
                report("E205", f"the enum lists \"{v}\" twice", spec.span, [f"list \"{v}\" once"])
            seen.add(v)
        return T.Type("enum", values=tuple(dict.fromkeys(spec.values)))
    return T.Type(spec.name)


def _fields(decls: list[A.FieldDecl], report: Report, reserved: set[str]) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for fd in decls:
        name = fd.name.name
        if name in out:
            first = next(d for d in decls if d.name.name == name)
            report("E205", f"the field `{name}` is declared twice", fd.name.span,
                   [f"the first is on line {first.name.span.line}; remove this one or rename it"])
            continue
        if name in reserved:
            report("E205", f"`{name}` is a built-in name here; name the field differently and map it with "
                           f"`column {name}`", fd.name.span, [f"e.g. `{name}_value TYPE column {name}`"])
            continue
        t = _type(fd.type, report)
        if fd.tz and t.kind != "text":
            report("E301", f"the time-zone field `{name}` must be text (an IANA zone name)", fd.type.span,
                   [f"`{name} text tz`"])
        out[name] = Field(name, fd.column.name if fd.column else name, t, fd.pii, fd.tz)
    if sum(1 for f in out.values() if f.tz) > 1:
        report("E205", "more than one field is marked `tz`", decls[-1].span,
               ["one field gives each user's time zone: keep `tz` on one of " +
                ", ".join(f"`{f.name}`" for f in out.values() if f.tz)])
    return out


def build_schema(modules: list[A.Module], report: Report) -> Schema:
    schema = Schema()
    for module in modules:
        report.file = module.path
        for decl in module.decls:
            if isinstance(decl, A.UsersDecl):
                if _dup(schema, "users", decl.span, report, "the users table"):
                    continue
                schema.users = Users(decl.table, decl.key.name, _fields(decl.fields, report, set()))
            elif isinstance(decl, A.EventsDecl):
                name = decl.name.name
                if _dup(schema, f"events:{name}", decl.name.span, report, f"the events `{name}`"):
                    continue
                schema.events[name] = Event(name, decl.table, decl.user.name, decl.time.name,
                                            _fields(decl.fields, report, RESERVED_EVENT_FIELDS))
            elif isinstance(decl, A.TagsDecl):
                if not _dup(schema, "tags", decl.span, report, "tags"):
                    schema.tags = Link(decl.table, decl.user.name, decl.tag.name)
            elif isinstance(decl, A.ConsentDecl):
                if not _dup(schema, "consent", decl.span, report, "consent"):
                    schema.consent = Link(decl.table, decl.user.name, decl.channel.name)
    return schema


def _dup(schema: Schema, key: str, span: Span, report: Report, what: str) -> bool:
    if key in schema.origins:
        file, first = schema.origins[key]
        report("E205", f"{what} is declared twice", span, [f"first declared at {file}:{first.line}"])
        return True
    schema.origins[key] = (report.file, span)
    return False
