"""camp.toml -> WorkspaceConfig (validated; unknown keys are errors, so typos are caught)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compiler.report import did_you_mean
from compiler.zones import zone_or_none
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.parse import normalize_text
from dsl.span import Span

BUILTIN_CHANNELS = ("push", "sms", "email", "webhook", "outbox", "console", "in_app")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceSection(_Strict):
    name: str = "camp"
    timezone: str = "UTC"
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        if zone_or_none(v) is None:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'Asia/Shanghai')") from None
        return v


class DataSection(_Strict):
    url: str = "duckdb:///camp.duckdb"


class LedgerSection(_Strict):
    url: str = "duckdb:///ledger.duckdb"


class TemplatesSection(_Strict):
    dir: str = "templates"


class CouponsSection(_Strict):
    redeemed_on: str = "orders"  # the event table whose fields coupon scopes (`only category in ...`) name


class RuntimeSection(_Strict):
    # how long after its slot a deployed run waits for higher-priority rivals (docs/runtime.md, "Arbitration")
    arbitration_wait: str = "10m"

    @field_validator("arbitration_wait")
    @classmethod
    def _duration(cls, v: str) -> str:
        if wait_seconds(v) is None:
            raise ValueError(f"{v!r} is not a duration from 0s to 24h like \"30s\", \"10m\" or \"1h\"") from None
        return v

    @property
    def arbitration_seconds(self) -> int:
        return wait_seconds(self.arbitration_wait) or 0


_WAIT_UNITS = {"s": 1, "m": 60, "h": 3600}


def wait_seconds(text: str) -> int | None:
    """"90s", "10m", "1h" -> seconds (0 to 24 hours); None when it is not such a duration."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smh])\s*", text)
    if not m:
        return None
    seconds = int(m.group(1)) * _WAIT_UNITS[m.group(2)]
    return seconds if seconds <= 24 * 3600 else None


class ChannelSection(_Strict):
    kind: str
    settings: dict[str, str | int | float | bool] = {}


class WorkspaceConfig(_Strict):
    workspace: WorkspaceSection = WorkspaceSection()
    data: DataSection = DataSection()
    ledger: LedgerSection = LedgerSection()
    templates: TemplatesSection = TemplatesSection()
    coupons: CouponsSection = CouponsSection()
    runtime: RuntimeSection = RuntimeSection()
    channels: dict[str, ChannelSection] = {}

    def channel_names(self) -> list[str]:
        return list(BUILTIN_CHANNELS) + [c for c in self.channels if c not in BUILTIN_CHANNELS]


def load_config(path: Path, display: str) -> tuple[WorkspaceConfig, list[Diagnostic], str | None]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return WorkspaceConfig(), [diagnostic("E002", f"cannot read camp.toml: {exc.strerror}", Span.point(1, 1),
                                              display, ["check the file's permissions"])], None
    try:
        text = normalize_text(data.decode("utf-8"))  # a BOM, CRLF or CR-only lines read as in a .camp file
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return WorkspaceConfig(), [diagnostic("E002", f"camp.toml is not UTF-8 (byte 0x{data[exc.start]:02x} at "
                                              f"line {line})", Span.point(line, 1), display,
                                              ["save camp.toml as UTF-8"])], None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col = getattr(exc, "lineno", 1) or 1, getattr(exc, "colno", 1) or 1
        msg = str(exc).split(" (at line")[0]
        return WorkspaceConfig(), [diagnostic("E002", f"camp.toml is not valid TOML: {msg}",
                                              Span.point(line, col), display, [_toml_hint(msg)])], text
    try:
        return WorkspaceConfig.model_validate(raw), [], text
    except ValidationError as exc:
        diags = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            line = _find_key_line(text, [str(p) for p in err["loc"]])
            msg = err["msg"].removeprefix("Value error, ")
            hint = _validation_hint(err["type"], [str(p) for p in err["loc"]])
            if err["type"] == "extra_forbidden":
                msg = "camp does not know this setting"
                hint = did_you_mean(str(err["loc"][-1]), _known_keys(err["loc"][:-1])) or "remove it"
            diags.append(diagnostic("E002", f"camp.toml: `{loc}`: {msg}", Span.point(line, 1), display, [hint]))
        return WorkspaceConfig(), diags, text


def _validation_hint(kind: str, loc: list[str]) -> str:
    key = loc[-1] if loc else ""
    if kind == "missing":
        return f"add `{key} = ...` under `[{'.'.join(loc[:-1])}]`"
    if kind == "string_pattern_mismatch":
        return "a currency code is three capital letters: `CNY`, `USD`, `EUR`"
    if kind == "string_type":
        return f'write it as a quoted text: `{key} = "..."`'
    if kind in ("model_type", "dict_type"):
        return f"`{'.'.join(loc)}` is a table: write `[{'.'.join(loc)}]` and its settings on the lines below"
    if key == "arbitration_wait":
        return 'a number and a unit: "30s", "10m" or "1h" (at most 24h; "0s" never waits)'
    if key == "timezone":
        return 'IANA names look like "Asia/Shanghai", "Europe/London" or "UTC"'
    return "the settings camp.toml takes: README, section \"A workspace\", and docs/runtime.md"


def _toml_hint(msg: str) -> str:
    low = msg.lower()
    if "unclosed" in low or "expected ']'" in low:
        return "close the table header or array with `]`"
    if "illegal character" in low:
        return 'close the quote on the same line: `name = "shop"`'
    if "expected '='" in low:
        return 'settings are written `key = value`, like `timezone = "Asia/Shanghai"`'
    if "overwrite" in low or "twice" in low:
        return "each setting and table appears once; remove the repeated one"
    if "invalid value" in low or "invalid initial character" in low:
        return 'texts are quoted: `timezone = "Asia/Shanghai"`; numbers and true/false are not'
    return 'each line is a `[table]` header or `key = "value"`, e.g. `[workspace]` then `timezone = "Asia/Shanghai"`'


def _known_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = WorkspaceConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _find_key_line(text: str, loc: list[str]) -> int:
    """Best effort: the line where the last key of `loc` is set (or its table starts)."""
    for key in reversed(loc):
        for i, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if s.startswith(key + " ") or s.startswith(key + "=") or s.strip("[]").split(".")[-1] == key:
                return i
    return 1
