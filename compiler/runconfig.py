"""A valid camp.toml -> diagnostics for settings that would only fail at run time.

`camp check` never imports the runtime (nor Prefect), so channel kinds are resolved the way
`runtime.channels.make_channel` does it, without running any of their code: the built-in kinds by
name, `package.module:Class` by finding the module (importlib.util.find_spec) and the class among
the module's top-level names. Settings the adapters cannot run without are required here.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from compiler.config import WorkspaceConfig, parse_rate
from compiler.report import did_you_mean
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.span import Span

BUILTIN_KINDS = ("outbox", "console", "smtp", "email", "webhook")  # runtime.channels._kinds(); a test keeps them equal
REQUIRED = {"webhook": ("url",)}
NUMERIC = {"webhook": ("timeout", "retries", "backoff"), "smtp": ("port", "timeout", "retries"),
           "email": ("port", "timeout", "retries")}


def check_run_config(config: WorkspaceConfig, text: str, root: Path, display: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []

    def report(code: str, message: str, line: int, hint: str) -> None:
        out.append(diagnostic(code, message, Span.point(line, 1), display, [hint]))

    for name, spec in config.channels.items():
        table = f"channels.{name}"
        problem = _kind_problem(spec.kind)
        if problem:
            report("E003", f"camp.toml: channel `{name}`: {problem}", _line(text, table, "kind"),
                   did_you_mean(spec.kind, BUILTIN_KINDS, '"{}"') or
                   f"kinds: {', '.join(BUILTIN_KINDS)}, or \"package.module:Class\" importable where camp runs")
            continue
        if spec.rate is not None and parse_rate(spec.rate) is None:
            line = _line(text, table, "rate")
            out.append(diagnostic("E013", f"camp.toml: channel `{name}`: `rate` {spec.rate!r} is not a number of "
                                  "requests per second or minute", Span.point(line, _value_col(text, line)), display,
                                  ['a whole number from 1 to 1000000, "/s" or "/m": rate = "500/s" or '
                                   'rate = "30000/m"']))
        settings = spec.settings
        for key in REQUIRED.get(spec.kind, ()):
            if key not in settings:
                report("E004", f"camp.toml: channel `{name}` ({spec.kind}) needs the setting `{key}`",
                       _line(text, table, "kind"), f"add it under [{table}.settings]: {key} = \"...\"")
        url = settings.get("url")
        if spec.kind == "webhook" and isinstance(url, str) and not url.startswith(("http://", "https://")):
            report("E004", f"camp.toml: channel `{name}`: `url` must start with http:// or https://",
                   _line(text, f"{table}.settings", "url"), "e.g. url = \"https://example.com/hook\"")
        for key in NUMERIC.get(spec.kind, ()):
            if key in settings and not _number(settings[key]):
                report("E004", f"camp.toml: channel `{name}`: `{key}` must be a number, not {settings[key]!r}",
                       _line(text, f"{table}.settings", key), f"e.g. {key} = 5")
    margin = config.report.margin
    if margin is not None and config.report.margin_fraction is None:
        report("E007", f"camp.toml: `report.margin` {margin!r} is not a percentage from 0% to 100%",
               _line(text, "report", "margin"), "the gross margin of sales, e.g. margin = \"30%\"")
    data, ledger = _resolve(config.data.url, root), _resolve(config.ledger.url, root)
    # one DuckDB file cannot be the read-only warehouse and the written ledger at once (one writer per file);
    # on PostgreSQL the ledger's camp_ tables may share the warehouse's database and schema
    if data == ledger and data.startswith("duckdb:") and not data.startswith("duckdb:///:memory:"):
        report("E005", "camp.toml: the ledger and the data are the same database", _line(text, "ledger", "url"),
               "the ledger is written while the warehouse is read (a DuckDB file takes one writer): "
               "give [ledger] url its own database, e.g. \"duckdb:///ledger.duckdb\"")
    if config.runtime.workers > 1 and ledger.startswith("duckdb:"):
        report("E021", f"camp.toml: `runtime.workers` = {config.runtime.workers} with a DuckDB ledger",
               _line(text, "runtime", "workers"), "a DuckDB file takes one writer process: set [ledger] url to "
               "postgresql://... for parallel workers, or workers = 1")
    out.extend(_deploy_problems(config, text, root, display))
    return out


def _deploy_problems(config: WorkspaceConfig, text: str, root: Path, display: str) -> list[Diagnostic]:
    """E020: `[deploy]` names no source camp knows, or both; a `path` that is not absolute or does not hold the
    workspace. E022: `source = "git"` where git cannot say what to clone (no repository, no such remote)."""
    d = config.deploy
    out: list[Diagnostic] = []

    def report(code: str, message: str, key: str, hint: str) -> None:
        out.append(diagnostic(code, message, Span.point(_line(text, "deploy", key), 1), display, [hint]))

    if d.source is not None and d.source != "git":
        report("E020", f"camp.toml: `deploy.source` {d.source!r} is not a code source camp knows", "source",
               'source = "git" (the workspace\'s repository), or a shared folder: path = "/srv/camp"')
    elif d.source is not None and d.path is not None:
        report("E020", "camp.toml: `deploy` gives both `source` and `path`", "path",
               "workers take the workspace from one place: keep source = \"git\" or path, not both")
    elif d.path is not None:
        shared = Path(d.path)
        if not shared.is_absolute():
            report("E020", f"camp.toml: `deploy.path` {d.path!r} is not an absolute path", "path",
                   'the folder every worker mounts, e.g. path = "/srv/camp"')
        elif not _inside(root, shared):
            report("E020", f"camp.toml: the workspace {root.resolve()} is not inside `deploy.path` {d.path!r}",
                   "path", "deploy from the shared folder's copy of the workspace, or name the folder that holds it")
    elif d.source == "git":
        from compiler.git_source import GitSourceError, git_source

        try:
            git_source(root, d.remote)
        except GitSourceError as exc:
            report("E022", f"camp.toml: `deploy.source` = \"git\": {exc}", "source", exc.hint)
    return out


def _inside(root: Path, folder: Path) -> bool:
    try:
        root.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _kind_problem(kind: str) -> str | None:
    if kind in BUILTIN_KINDS:
        return None
    if ":" not in kind:
        return f"unknown kind \"{kind}\""
    module, _, attr = kind.partition(":")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is None:
        return f"the module `{module}` of kind \"{kind}\" cannot be imported"
    if not attr.isidentifier():
        return f"\"{attr}\" is not a class name"
    names = _top_level_names(spec.origin)
    if names is not None and attr not in names:
        return f"the module `{module}` has no `{attr}`"
    return None


def _top_level_names(origin: str | None) -> set[str] | None:
    """Names a Python source file defines at top level; None when that cannot be known without running it."""
    if not origin or not origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                return None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add((alias.asname or alias.name).split(".")[0])
        elif not isinstance(node, ast.Expr):  # if/try blocks: names may be defined conditionally
            return None
    return names


def _number(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _resolve(url: str, root: Path) -> str:
    """As runtime.warehouse.workspace_url: a relative DuckDB path is relative to the workspace."""
    if url.startswith("duckdb:///") and not url.startswith("duckdb:///:memory:"):
        path = Path(url.removeprefix("duckdb:///"))
        if not path.is_absolute():
            path = root / path
        return "duckdb:///" + str(path.resolve())
    return url.rstrip("/")


def _value_col(text: str, line: int) -> int:
    """The column where the value of `key = value` on this line starts (1 when the line has none)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines) or "=" not in lines[line - 1]:
        return 1
    key, _, rest = lines[line - 1].partition("=")
    return len(key) + 2 + len(rest) - len(rest.lstrip())


def _line(text: str, table: str, key: str) -> int:
    """The line of `key` inside `[table]` (or of the table's header, or 1)."""
    header = None
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("["):
            if header is not None and s.strip("[] ") != table:
                return header
            if s.strip("[] ") == table:
                header = i
        elif header is not None and s.split("=", 1)[0].strip().strip('"') == key:
            return i
    return header or 1
