"""camp.toml -> WorkspaceConfig (validated; unknown keys are errors, so typos are caught).

`check_coupons` then checks what `[coupons]` names against the schema (`camp check` calls it once the schema
is built): where the shop's orders say which camp coupon they used, read by `camp sync`. `check_points` checks
`[points]`: the cost of a point (budgets count it) and the channel that issues points; `check_red_packets` what
`[red_packets]` names: where the shop's red packet shares are, read by `camp sync`; `check_clicks` what `[clicks]`
names: where clicks on camp's messages are, read by `camp report`.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compiler.report import did_you_mean
from compiler.zones import zone_or_none
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.parse import normalize_text
from dsl.span import Span

if TYPE_CHECKING:
    from compiler.schema import Schema

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


class Redemptions(BaseModel):
    """Where `camp sync` reads redemptions: the `redeemed_on` events' table and columns (resolved against the
    schema), and how late an order may still arrive. Plain data, so a flow can take it as JSON."""

    model_config = ConfigDict(frozen=True)

    table: str
    time_column: str
    coupon_column: str  # carries camp_coupons.coupon_id
    amount_column: str
    scope_columns: dict[str, str]  # every field of the events (a coupon's scope names them) -> its column
    late_data_minutes: int


class CouponsSection(_Strict):
    redeemed_on: str = "orders"  # the event table whose fields coupon scopes (`only category in ...`) name
    coupon_field: str | None = None  # a text field of those events carrying the coupon id camp issued; none: no sync
    amount_field: str = "amount"  # a money field of those events: the order's amount
    late_data: str = "3d"  # how long after a coupon's validity ends its redemptions may still arrive

    @field_validator("late_data")
    @classmethod
    def _late(cls, v: str) -> str:
        if _late_minutes(v) is None:
            raise ValueError(f"{v!r} is not a duration from 0m to 365d like \"12h\", \"3d\" or \"1w\"") from None
        return v

    def redemptions(self, schema: Schema) -> Redemptions | None:
        """Where the schema keeps this section's redemptions; None without a coupon_field (no sync) or when a
        name does not resolve (`check_coupons` reports it)."""
        event = schema.events.get(self.redeemed_on)
        if self.coupon_field is None or event is None or _coupon_problems(self, schema):
            return None
        return Redemptions(table=event.table, time_column=event.time_column,
                           coupon_column=event.fields[self.coupon_field].column,
                           amount_column=event.fields[self.amount_field].column,
                           scope_columns={f.name: f.column for f in event.fields.values()},
                           late_data_minutes=_late_minutes(self.late_data) or 0)


def _late_minutes(text: str) -> int | None:
    """"12h", "3d", "1w" -> minutes (0 to 365 days); None when it is not such a duration."""
    return _count_of(text, {"m": 1, "h": 60, "d": 1440, "w": 10080}, 365 * 1440)


def _count_of(text: str, units: dict[str, int], most: int) -> int | None:
    """"<digits><unit>" -> digits times the unit's size, at most `most`; None when it is not such a text."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*([a-z])\s*", text)
    if not m or m.group(2) not in units:
        return None
    n = int(m.group(1)) * units[m.group(2)]
    return n if n <= most else None


def check_coupons(config: WorkspaceConfig, schema: Schema, text: str, display: str) -> list[Diagnostic]:
    """E006 for each `[coupons]` setting the schema cannot back: the events, the coupon field (text), the amount
    field (money). Nothing to check without a coupon_field: then nothing is synced."""
    return _section_diagnostics("E006", "coupons", _coupon_problems(config.coupons, schema), text, display)


def _section_diagnostics(code: str, section: str, problems: list[tuple[str, str, str]], text: str,
                         display: str) -> list[Diagnostic]:
    """One diagnostic per (key, message, hint) of a camp.toml section, at the line that sets the key."""
    return [diagnostic(code, f"camp.toml: `{section}.{key}`: {message}",
                       Span.point(_find_key_line(text, [section, key]), 1), display, [hint])
            for key, message, hint in problems]


def _coupon_problems(section: CouponsSection, schema: Schema) -> list[tuple[str, str, str]]:
    """(key, message, hint) per setting of the section the schema does not back."""
    if section.coupon_field is None:
        return []
    return _event_problems(schema, "redeemed_on", section.redeemed_on,
                           "`events orders from table orders user user_id time created_at { ... }`",
                           [("coupon_field", section.coupon_field, "text", "the coupon id camp issued"),
                            ("amount_field", section.amount_field, "money", "the order's amount")])


def _event_problems(schema: Schema, events_key: str, events: str, example: str,
                    fields: list[tuple[str, str | None, str, str]]) -> list[tuple[str, str, str]]:
    """(key, message, hint) for the events camp.toml names (`events_key` = `events`) and for each of their fields
    (key, name or None when optional and unset, the kind it must have, what it carries) the schema lacks."""
    event = schema.events.get(events)
    if event is None:
        return [(events_key, f"the schema declares no events `{events}`",
                 did_you_mean(events, list(schema.events)) or f"declare them: {example}")]
    out = []
    for key, name, kind, what in fields:
        field = event.fields.get(name) if name else None
        if name and field is None:
            out.append((key, f"the events `{event.name}` have no field `{name}`",
                        did_you_mean(name, list(event.fields)) or
                        f"declare it in `events {event.name}`: `{name} {'text' if kind == 'text' else 'money(CNY)'}`"))
        elif field is not None and field.type.kind != kind:
            out.append((key, f"`{event.name}.{name}` is {field.type}, but it must be {kind}: it carries {what}",
                        f"name a {kind} field of `{event.name}`"))
    return out


class Shares(BaseModel):
    """Where `camp sync` reads red packet shares: the `shared_on` events' table and columns (resolved against the
    schema). Plain data, like Redemptions."""

    model_config = ConfigDict(frozen=True)

    table: str
    user_column: str
    time_column: str
    id_column: str  # the share event's id: a share is paid once whatever replays it
    packet_column: str | None  # the red packet shared; None: the user's latest
    late_data_minutes: int = 3 * 1440  # how long after a sync's as-of a share made before it may still arrive


class RedPacketsSection(_Strict):
    """`[red_packets]`: where the shop's share events are (`camp sync` pays them, runtime.shares)."""

    shared_on: str = "shares"  # the event table of shares
    share_field: str | None = None  # a text field of those events: the share's id; none: shares are not synced
    packet_field: str | None = None  # a text field naming the red packet shared; none: the user's latest packet
    late_data: str = "3d"  # how long after a sync a share made before it may still reach the warehouse and be paid

    @field_validator("late_data")
    @classmethod
    def _late(cls, v: str) -> str:
        if _late_minutes(v) is None:
            raise ValueError(f"{v!r} is not a duration from 0m to 365d like \"12h\", \"3d\" or \"1w\"") from None
        return v

    def shares(self, schema: Schema) -> Shares | None:
        """Where the schema keeps the shares; None without a share_field or when a name does not resolve
        (`check_red_packets` reports it)."""
        event = schema.events.get(self.shared_on)
        if self.share_field is None or event is None or _share_problems(self, schema):
            return None
        return Shares(table=event.table, user_column=event.user_column, time_column=event.time_column,
                      id_column=event.fields[self.share_field].column,
                      packet_column=event.fields[self.packet_field].column if self.packet_field else None,
                      late_data_minutes=_late_minutes(self.late_data) or 0)


def check_red_packets(config: WorkspaceConfig, schema: Schema, text: str, display: str) -> list[Diagnostic]:
    """E008 for each `[red_packets]` setting the schema cannot back: the events, the share id and packet fields
    (text). Nothing to check without a share_field: then shares are not synced."""
    return _section_diagnostics("E008", "red_packets", _share_problems(config.red_packets, schema), text, display)


def _share_problems(section: RedPacketsSection, schema: Schema) -> list[tuple[str, str, str]]:
    if section.share_field is None:
        return []
    return _event_problems(schema, "shared_on", section.shared_on,
                           "`events shares from table shares user user_id time shared_at { share_id text }`",
                           [("share_field", section.share_field, "text", "each share's id"),
                            ("packet_field", section.packet_field, "text", "the red packet's name")])


class Clicks(BaseModel):
    """Where `camp report` reads clicks on camp's messages: the `clicked_on` events (resolved against the schema)
    and their field naming the campaign of the message clicked. Plain data, like Redemptions."""

    model_config = ConfigDict(frozen=True)

    event: str
    campaign_field: str


class ClicksSection(_Strict):
    """`[clicks]`: the shop's (or its providers') click events on camp's messages: the click rate of `camp report`
    and `target click_rate`. Without a campaign_field clicks are not measured."""

    clicked_on: str = "clicks"  # the event table of clicks
    campaign_field: str | None = None  # a text field of those events: the campaign of the message clicked

    def clicks(self, schema: Schema) -> Clicks | None:
        """Where the schema keeps the clicks; None without a campaign_field or when a name does not resolve
        (`check_clicks` reports it)."""
        if self.campaign_field is None or _click_problems(self, schema):
            return None
        return Clicks(event=self.clicked_on, campaign_field=self.campaign_field)


def check_clicks(config: WorkspaceConfig, schema: Schema, text: str, display: str) -> list[Diagnostic]:
    """E010 for a `[clicks]` setting the schema cannot back: the events and their campaign field (text)."""
    return _section_diagnostics("E010", "clicks", _click_problems(config.clicks, schema), text, display)


def _click_problems(section: ClicksSection, schema: Schema) -> list[tuple[str, str, str]]:
    if section.campaign_field is None:
        return []
    return _event_problems(schema, "clicked_on", section.clicked_on,
                           "`events clicks from table clicks user user_id time clicked_at { campaign text }`",
                           [("campaign_field", section.campaign_field, "text", "the campaign of the message")])


class PointsSection(_Strict):
    """`[points]`: what one point costs the shop (counted in budgets: a grant of N points reserves N x
    cost_per_point) and the channel of `[channels]` that issues them to the shop's points system (a webhook),
    or the outbox (camp_points, which the shop reads) by default. `check_points` validates both (E009)."""

    cost_per_point: str = "0"
    issue_with: str = "outbox"

    def unit_cost(self) -> Decimal | None:
        """The cost of one point; None when `cost_per_point` is not a price (`check_points` reports it)."""
        return point_cost(self.cost_per_point)


def point_cost(text: str) -> Decimal | None:
    """"0.01" -> Decimal("0.01"): a number from 0 to 1000 with at most 4 decimals; None otherwise."""
    if not re.fullmatch(r"\s*\d{1,4}(\.\d{1,4})?\s*", text):
        return None
    value = Decimal(text.strip())
    return value if value <= 1000 else None


def check_points(config: WorkspaceConfig, text: str, display: str) -> list[Diagnostic]:
    """E009 for a `[points]` cost that is not a price, or an issuing channel camp.toml does not configure."""
    out = []
    if config.points.unit_cost() is None:
        out.append(diagnostic("E009", f"camp.toml: `points.cost_per_point`: {config.points.cost_per_point!r} is not "
                              "a price per point", Span.point(_find_key_line(text, ["points", "cost_per_point"]), 1),
                              display, ['a number from 0 to 1000 with at most 4 decimals, quoted: "0.01"']))
    issuer = config.points.issue_with
    if issuer != "outbox" and issuer not in config.channels:
        out.append(diagnostic("E009", f"camp.toml: `points.issue_with`: no channel `{issuer}` in [channels]",
                              Span.point(_find_key_line(text, ["points", "issue_with"]), 1), display,
                              [did_you_mean(issuer, ["outbox", *config.channels], '"{}"') or
                               f'configure it: [channels.{issuer}] kind = "webhook" with settings.url, or write '
                               '"outbox"']))
    return out


class RuntimeSection(_Strict):
    # how long after its slot a deployed run waits for higher-priority rivals (docs/runtime.md, "Arbitration")
    arbitration_wait: str = "10m"
    # processes that decide and send one occurrence's batches (docs/runtime.md, "Parallel workers"); more than one
    # needs a PostgreSQL ledger (E021); a worker's claim on a batch lasts `lease`, then another may take it over
    workers: int = Field(default=1, ge=1, le=64)
    lease: str = "5m"
    # with workers > 1: the workers are flow runs of the `camp-batch-worker` deployment on this Prefect work pool,
    # taken by that pool's workers on any host, instead of processes of the host that runs the occurrence
    work_pool: str | None = Field(default=None, min_length=1, max_length=100)
    # how long an occurrence waits for its workers to start before it lists its batches anyway
    start_wait: str = "2m"

    @field_validator("arbitration_wait", "lease", "start_wait")
    @classmethod
    def _duration(cls, v: str) -> str:
        if wait_seconds(v) is None:
            raise ValueError(f"{v!r} is not a duration from 0s to 24h like \"30s\", \"10m\" or \"1h\"") from None
        return v

    @property
    def arbitration_seconds(self) -> int:
        return wait_seconds(self.arbitration_wait) or 0

    @property
    def lease_seconds(self) -> int:
        return max(1, wait_seconds(self.lease) or 0)

    @property
    def start_wait_seconds(self) -> int:
        return wait_seconds(self.start_wait) or 0


def wait_seconds(text: str) -> int | None:
    """"90s", "10m", "1h" -> seconds (0 to 24 hours); None when it is not such a duration."""
    return _count_of(text, {"s": 1, "m": 60, "h": 3600}, 24 * 3600)


class DeploySection(_Strict):
    """Where a worker on another host finds the workspace's files (docs/runtime.md, "Deployments on workers"):
    `source = "git"` (the workspace's git repository: its remote's URL and the commit deployed, Prefect's
    `git_clone` pull step) or `path` (a folder every worker mounts, the `set_working_directory` pull step).
    Neither: the deploying host's absolute path, for workers on that host only. Checked by compiler.runconfig
    (E020, E022)."""

    source: str | None = None
    remote: str = "origin"  # with source = "git": the remote whose URL workers clone
    path: str | None = None


class ReportSection(_Strict):
    # the gross margin of sales, for ROI in `camp report` (docs/report.md); checked by compiler.runconfig (E007)
    margin: str | None = None

    @property
    def margin_fraction(self) -> Decimal | None:
        return percent_fraction(self.margin) if self.margin is not None else None


def percent_fraction(text: str) -> Decimal | None:
    """"30%" -> Decimal("0.3"); None unless it is a percentage from 0% to 100% (at most 4 decimals)."""
    m = re.fullmatch(r"\s*(\d{1,3}(?:\.\d{1,4})?)\s*%\s*", text)
    if not m:
        return None
    value = Decimal(m.group(1))
    return value / 100 if value <= 100 else None


class ChannelSection(_Strict):
    """`[channels.NAME]`: the adapter (`kind`) and its `settings`; `rate` ("500/s", "30000/m": at most that many
    requests to the provider in any such window, across the runs and workers sharing the ledger; checked by
    compiler.runconfig, E013) and `concurrency` (requests in flight at once; the adapter's default when unset)."""

    kind: str
    settings: dict[str, str | int | float | bool] = {}
    rate: str | None = None
    concurrency: int | None = Field(default=None, ge=1, le=512)


RATE_UNITS = {"s": 1, "m": 60}


def parse_rate(text: str) -> tuple[int, int] | None:
    """"500/s" -> (500, 1), "30000/m" -> (30000, 60): requests per window of seconds; None when it is not a whole
    number from 1 to 1,000,000 over `s` or `m`."""
    m = re.fullmatch(r"\s*(\d{1,7})\s*/\s*([a-z]+)\s*", text)
    if not m or m.group(2) not in RATE_UNITS or not 1 <= int(m.group(1)) <= 1_000_000:
        return None
    return int(m.group(1)), RATE_UNITS[m.group(2)]


class TeamSection(_Strict):
    """`[teams.NAME]`: where an `alert ... to NAME` goes: a channel of `[channels]` (a webhook, smtp/email, the
    console or the outbox) and, for email, the team's address. Alerts go to a team, never to customers: no
    consent, caps or quiet hours apply."""

    channel: str
    address: str | None = None


def check_teams(config: WorkspaceConfig, text: str, display: str) -> list[Diagnostic]:
    """E012 for a team whose channel camp.toml does not configure, or an email channel without an address."""
    out = []
    for name, team in config.teams.items():
        known = ["console", "outbox", *config.channels]
        if team.channel not in known:
            out.append(diagnostic("E012", f"camp.toml: `teams.{name}.channel`: no channel `{team.channel}`",
                                  Span.point(_find_key_line(text, ["teams", name, "channel"]), 1), display,
                                  [did_you_mean(team.channel, known, '"{}"') or
                                   f'configure it: [channels.{team.channel}] kind = "webhook" with settings.url']))
        elif team.channel in config.channels and config.channels[team.channel].kind in ("smtp", "email") \
                and not team.address:
            out.append(diagnostic("E012", f"camp.toml: `teams.{name}`: channel `{team.channel}` sends email but the "
                                  "team has no address", Span.point(_find_key_line(text, ["teams", name]), 1),
                                  display, ['add `address = "crm-ops@example.com"`']))
    return out


class LintSection(_Strict):
    """`[lint]`: which warnings `camp check` reports, the ruff way: `select` codes or prefixes (default: every
    warning), then `ignore` codes or prefixes. Errors cannot be deselected: they stop a campaign from running."""

    select: list[str] = ["W"]
    ignore: list[str] = []

    @field_validator("select", "ignore")
    @classmethod
    def _warning_codes(cls, v: list[str]) -> list[str]:
        from dsl.codes import CODES

        warnings = [c for c, info in CODES.items() if info.severity == "warning"]
        for code in v:
            if not code.startswith("W") or not any(w.startswith(code) for w in warnings):
                hint = "errors cannot be ignored" if code in CODES else "warning codes: " + ", ".join(warnings)
                raise ValueError(f"{code!r} is not a warning code or prefix ({hint})") from None
        return v

    def reports(self, code: str) -> bool:
        """Whether a warning with this code is reported."""
        return any(code.startswith(s) for s in self.select) and not any(code.startswith(i) for i in self.ignore)


class WorkspaceConfig(_Strict):
    workspace: WorkspaceSection = WorkspaceSection()
    data: DataSection = DataSection()
    ledger: LedgerSection = LedgerSection()
    templates: TemplatesSection = TemplatesSection()
    coupons: CouponsSection = CouponsSection()
    points: PointsSection = PointsSection()
    red_packets: RedPacketsSection = RedPacketsSection()
    clicks: ClicksSection = ClicksSection()
    runtime: RuntimeSection = RuntimeSection()
    report: ReportSection = ReportSection()
    deploy: DeploySection = DeploySection()
    channels: dict[str, ChannelSection] = {}
    teams: dict[str, TeamSection] = {}
    lint: LintSection = LintSection()

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
    if key == "late_data":
        return 'a number and a unit: "12h", "3d" or "1w" (at most 365d; "0d" allows no late orders)'
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
