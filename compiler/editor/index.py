"""Workspace -> Index: every name a .camp file can mention (fields, events, segments, classifications and their
labels, campaigns, tags, templates), each with where it is declared and what hover shows for it.

Built from the AST of every module, not from the checked program: a file being typed is often broken, and the
names declared elsewhere must still be offered. Types are written as the schema spells them (`money(CNY)`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from compiler.workspace import Workspace
from dsl import ast as A
from dsl.span import Span
from dsl.walk import walk


@dataclass(frozen=True)
class Place:
    """Where a name is declared: the real file and the span of its declaration (Span.unknown(): the whole file)."""

    path: Path
    span: Span


@dataclass(frozen=True)
class Symbol:
    """kind: field, event, event_field, segment, classification, label, campaign, tag, template."""

    kind: str
    name: str
    detail: str  # one line: a type, a title
    doc: str  # markdown for hover
    place: Place | None = None


@dataclass
class Index:
    root: Path
    template_dir: Path
    modules: dict[str, A.Module] = field(default_factory=dict)  # real path (str) -> module
    fields: dict[str, Symbol] = field(default_factory=dict)  # users fields
    events: dict[str, Symbol] = field(default_factory=dict)
    event_fields: dict[str, dict[str, Symbol]] = field(default_factory=dict)
    segments: dict[str, Symbol] = field(default_factory=dict)
    classifications: dict[str, Symbol] = field(default_factory=dict)
    labels: dict[str, dict[str, Symbol]] = field(default_factory=dict)  # classification -> label -> symbol
    campaigns: dict[str, Symbol] = field(default_factory=dict)
    tags: dict[str, Symbol] = field(default_factory=dict)
    templates: dict[str, Symbol] = field(default_factory=dict)  # path relative to the template folder

    def label(self, name: str, classification: str | None = None) -> Symbol | None:
        if classification is not None:
            return self.labels.get(classification, {}).get(name)
        return next((ls[name] for ls in self.labels.values() if name in ls), None)


def index_workspace(ws: Workspace, memo: dict[int, tuple] | None = None) -> Index:
    """`memo`, kept by a caller between edits, remembers each module's tag uses (walking every expression is
    most of the index's time), for modules that are the same objects as last time (an unchanged file's parse)."""
    index = Index(root=ws.root, template_dir=ws.template_dir)
    uses: dict[str, list[tuple[Path, Span]]] = {}
    fresh: dict[int, tuple] = {}
    for module in ws.modules:
        path = ws.paths.get(module.path, ws.root / module.path)
        index.modules[str(path)] = module
        text = ws.sources.get(module.path, "")
        for decl in module.decls:
            _declare(index, decl, path, text)
        known = memo.get(id(module)) if memo is not None else None
        tagged = known[1] if known is not None and known[0] is module else _tag_uses(module)
        fresh[id(module)] = (module, tagged)  # the module is kept with its id, so the id is not reused meanwhile
        for tag, span in tagged:
            uses.setdefault(tag, []).append((path, span))
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    for tag, found in sorted(uses.items()):
        shown = ", ".join(f"{_shown(ws.root, p)}:{s.line}" for p, s in found[:5]) + (" …" if len(found) > 5 else "")
        index.tags[tag] = Symbol("tag", tag, "tag", f"**tag** `{tag}`: a tag in the tags table or one given by hand "
                                 f"(`camp tag add {tag}`)\n\nused {len(found)}× in this workspace: {shown}",
                                 Place(*found[0]))
    _templates(index)
    return index


def _tag_uses(module: A.Module) -> list[tuple[str, Span]]:
    return [(node.tag, node.span) for decl in module.decls for node in walk(decl) if isinstance(node, A.Tagged)]


def _declare(index: Index, decl: object, path: Path, text: str) -> None:
    where = f"\n\n{_shown(index.root, path)}:{getattr(decl, 'span', Span.unknown()).line}"
    if isinstance(decl, A.UsersDecl):
        for fd in decl.fields:
            index.fields.setdefault(fd.name.name, _field("users", fd, path))
    elif isinstance(decl, A.EventsDecl):
        name = decl.name.name
        own = {fd.name.name: _field(name, fd, path) for fd in decl.fields}
        own.setdefault("time", Symbol("event_field", "time", "timestamp",
                                      f"**{name}.time**: `timestamp`, when the event happened (column `{decl.time.name}`)",
                                      Place(path, decl.time.span)))
        index.event_fields.setdefault(name, own)
        listing = "\n".join(f"- `{s.name}` {s.detail}" for s in own.values())
        index.events.setdefault(name, Symbol("event", name, f"events from table {decl.table}",
                                             f"**events** `{name}` (table `{decl.table}`)\n\n{listing}{where}",
                                             Place(path, decl.name.span)))
    elif isinstance(decl, A.SegmentDecl):
        name = decl.name.name
        index.segments.setdefault(name, Symbol("segment", name, decl.title or "segment",
                                               f"**segment** `{name}`{_title(decl.title)}\n\n{_code(text, decl.span)}{where}",
                                               Place(path, decl.name.span)))
    elif isinstance(decl, A.ClassifyDecl):
        _classify(index, decl, path, text, where)
    elif isinstance(decl, A.CampaignDecl):
        name = decl.name.name
        owner = next((s.owner for s in decl.sections if isinstance(s, A.Owner)), None)
        index.campaigns.setdefault(name, Symbol("campaign", name, decl.title or "campaign",
                                                f"**campaign** `{name}`{_title(decl.title)}"
                                                + (f"\n\nowner: {owner}" if owner else "") + where,
                                                Place(path, decl.name.span)))


def _classify(index: Index, decl: A.ClassifyDecl, path: Path, text: str, where: str) -> None:
    name = decl.name.name
    if name in index.classifications:
        return
    labels = [r.label.name for r in decl.rules]
    index.classifications[name] = Symbol(
        "classification", name, decl.title or "classification",
        f"**classification** `{name}`{_title(decl.title)}: each user gets the first label whose rule holds\n\n"
        f"{_code(text, decl.span)}\n\nlabels: {', '.join(f'`{lb}`' for lb in labels)}{where}",
        Place(path, decl.name.span))
    own: dict[str, Symbol] = {}
    for rule in decl.rules:
        label = rule.label.name
        own.setdefault(label, Symbol("label", label, f"label of {name}",
                                     f"**label** `{label}`{_title(rule.title)} of classification `{name}`"
                                     f"{_title(decl.title, ' (', ')')}\n\n{_code(text, rule.span)}",
                                     Place(path, rule.label.span)))
    index.labels[name] = own


def _field(owner: str, fd: A.FieldDecl, path: Path) -> Symbol:
    t = _type(fd.type)
    notes = []
    if fd.column is not None:
        notes.append(f"column `{fd.column.name}`")
    if fd.pii:
        notes.append("personal data (pii): never shown in samples")
    if fd.tz:
        notes.append("each user's time zone (quiet hours, `is today`)")
    what = "users field" if owner == "users" else f"{owner} field"
    return Symbol("field" if owner == "users" else "event_field", fd.name.name, t,
                  f"**{what}** `{fd.name.name}`: `{t}`" + "".join(f"\n\n{n}" for n in notes), Place(path, fd.name.span))


def _type(spec: A.TypeSpec) -> str:
    if spec.name == "money":
        return f"money({spec.currency or ''})"
    if spec.name == "enum":
        return "enum(" + ", ".join(f'"{v}"' for v in spec.values) + ")"
    return spec.name


def _templates(index: Index) -> None:
    base = index.template_dir
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            path = Path(dirpath) / f
            rel = path.relative_to(base).as_posix()
            index.templates[rel] = template_symbol(index, rel)


def template_symbol(index: Index, rel: str) -> Symbol:
    """A template path as a campaign writes it; hover shows its first lines, definition opens the file."""
    path = index.template_dir / rel
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return Symbol("template", rel, "missing template",
                      f"**template** `{rel}`: no such file in `{_shown(index.root, index.template_dir)}/`")
    body = "\n".join(lines[:12]) + ("\n…" if len(lines) > 12 else "")
    return Symbol("template", rel, "template", f"**template** `{rel}`\n\n```jinja\n{body}\n```",
                  Place(path, Span.unknown()))


def _title(title: str | None, before: str = ": ", after: str = "") -> str:
    return f"{before}{title}{after}" if title else ""


def _code(text: str, span: Span) -> str:
    src = text[span.start:span.end] if text and span.end > span.start else ""
    return f"```camp\n{src.strip()}\n```" if src else ""


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
