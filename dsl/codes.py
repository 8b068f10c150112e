"""The registry of diagnostic codes. Codes are stable: never reuse or renumber one.

Each code has a severity, a title and an explanation. Wrong and right examples live
in tests/codes/<CODE>.bad.camp and <CODE>.good.camp; docs/diagnostics.md is generated
from both (`python -m tests.codes.gen_docs`), and a test keeps it in sync.

Ranges: E0xx workspace, E1xx reading and syntax, E2xx names, E3xx types,
E4xx values, E5xx templates, W1xx lint warnings.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class Code(NamedTuple):
    severity: Literal["error", "warning"]
    title: str
    explanation: str


def _e(title: str, explanation: str) -> Code:
    return Code("error", title, explanation)


def _w(title: str, explanation: str) -> Code:
    return Code("warning", title, explanation)


CODES: dict[str, Code] = {
    "E001": _e("no workspace", "camp looks for `camp.toml` in the given folder and its parents; every .camp file belongs to a workspace."),
    "E002": _e("bad camp.toml", "`camp.toml` is not valid TOML or has a setting camp does not know or cannot use."),
    "E003": _e("channel kind not found", "A `[channels.NAME]` kind in camp.toml is neither built in (outbox, console, smtp, email, webhook) nor a `package.module:Class` that can be imported where camp runs."),
    "E004": _e("channel setting missing or wrong", "A channel in camp.toml lacks a setting its kind cannot run without (a webhook's `url`), or a setting has the wrong kind of value (a port that is not a number)."),
    "E005": _e("ledger is the data", "The ledger URL in camp.toml names the same database as the data URL; the ledger is written while the warehouse is read, so each needs its own."),
    "E006": _e("coupon redemptions not in the schema", "`[coupons]` in camp.toml names where the shop's orders say which camp coupon they used (`redeemed_on` events, `coupon_field`, `amount_field`); each must be declared in the schema: the coupon field as text, the amount field as money."),
    "E007": _e("report margin not a percentage", "`[report] margin` in camp.toml is the gross margin of sales `camp report` turns incremental sales into profit with (ROI); it is a percentage from 0% to 100%, like \"30%\"."),
    "E008": _e("red packet shares not in the schema", "`[red_packets]` in camp.toml names where the shop's share events are (`shared_on` events, `share_field` carrying each share's id, optionally `packet_field` naming the red packet); each must be declared in the schema as text."),
    "E009": _e("points setting wrong", "`[points]` in camp.toml gives the cost of one point (`cost_per_point`, a quoted number with at most 4 decimals, counted in budgets) and the channel that issues points (`issue_with`: \"outbox\" or a channel of `[channels]`, e.g. a webhook to the shop's points system)."),
    "E010": _e("click events not in the schema", "`[clicks]` in camp.toml names where clicks on camp's messages are (`clicked_on` events, `campaign_field` naming the campaign of the message clicked, e.g. the link's utm_campaign); both must be declared in the schema, the field as text."),
    "E013": _e("channel rate not a rate", "`rate` of a `[channels.NAME]` in camp.toml is the most requests camp sends to that provider in any one-second (\"500/s\") or one-minute (\"30000/m\") window, across the runs and workers that share the ledger; a whole number from 1 to 1,000,000."),
    "E020": _e("deploy source unknown", "`[deploy]` in camp.toml says where workers on other hosts find the workspace: `source = \"git\"` (its repository, cloned at the deployed commit) or `path`, an absolute folder every worker mounts that holds the workspace; one of them, not both."),
    "E021": _e("workers need PostgreSQL", "`[runtime] workers` above 1 spreads an occurrence's batches over several processes; they meet in the ledger, and a DuckDB ledger file takes one writer process: use a PostgreSQL ledger or one worker."),
    "E022": _e("git source unusable", "`[deploy] source = \"git\"` needs the workspace inside a git repository with a commit and the remote workers clone (`origin`, or `[deploy] remote`)."),
    "E012": _e("team not configured", "A `[teams.NAME]` in camp.toml names where its alerts go: `channel` must be a channel of `[channels]` (or \"console\", \"outbox\"), and an email channel needs the team's `address`."),
    "E100": _e("file cannot be read", "The file could not be opened or read."),
    "E101": _e("not UTF-8", "Campaign files are UTF-8 text; save the file as UTF-8."),
    "E102": _e("binary file", "The file contains NUL bytes: it is not a text file."),
    "E103": _e("file too large", "A .camp file may be at most 2 MiB; split large workspaces into several files."),
    "E104": _e("syntax error", "The text does not follow the language at this point; the message says what was expected."),
    "E105": _e("unexpected character", "A character that the language does not use here (for example a stray `@` or an unclosed quote)."),
    "E106": _e("nested too deeply", "Parentheses nest more than 64 levels deep; simplify the condition or split it into segments."),
    "E107": _e("bad string", "A string literal has an invalid escape sequence (use \\\", \\\\, \\n, \\t or \\uXXXX)."),
    "E108": _e("unexpected end of file", "The file ends in the middle of a declaration (often a missing `}`)."),
    "E109": _e("number too long", "A number, duration or percentage has more than 100 digits. No amount, count or duration needs that many; usually a number was pasted twice."),
    "E201": _e("unknown field", "The name is not a field of the users table or of the event named."),
    "E202": _e("unknown event", "The name is not an event table declared with `events NAME from table ...`."),
    "E203": _e("unknown segment", "`segment NAME` refers to a segment that is not declared anywhere in the workspace."),
    "E204": _e("unknown name", "A bare name that is neither a user field, a classification, nor (after `classification =`) one of its labels."),
    "E205": _e("duplicate name", "Two declarations share a name (segments, classifications, campaigns, events, fields, steps, labels, variants)."),
    "E206": _e("segment cycle", "Segments refer to each other in a circle, so none of them can be computed."),
    "E207": _e("unknown step", "`since STEP` names a step that does not exist or comes later in the campaign."),
    "E208": _e("unknown channel", "The channel is not built in (push, sms, email, webhook, outbox, console, in_app) or declared in camp.toml."),
    "E209": _e("unknown resource", "`give NAME` names a coupon or red packet that the WHAT section does not define, or `give what` has no WHAT section."),
    "E210": _e("missing schema", "The workspace lacks a declaration its segments and campaigns need: the users table (`tagged` needs no `tags` declaration: manual tags exist without one)."),
    "E211": _e("duplicate section", "A campaign section or setting is written twice."),
    "E212": _e("unknown exclusive group", "`exclusive \"G\"` names a group that the workspace policy does not declare with `exclusive group \"G\"`."),
    "E213": _e("unknown objective or metric", "`why` takes acquisition, activation, retention, repurchase, reactivation or referral; `target` takes conversion, redemption or click_rate."),
    "E214": _e("missing section", "A campaign needs WHO, WHEN and HOW; `notify where` needs WHERE and `give what` needs WHAT."),
    "E301": _e("type mismatch", "The two sides of a comparison have different types (for example text against a number, or money against a plain number)."),
    "E302": _e("currency mix", "Money in different currencies is compared or added; camp never converts currencies implicitly."),
    "E303": _e("unknown enum value", "The value is not one of the values the schema lists for this enum field."),
    "E304": _e("wrong unit", "A duration, percent or money amount is used where another kind of quantity is expected."),
    "E305": _e("operator does not fit the type", "The operator or aggregate cannot apply to a value of this type (e.g. `sum` of a text field, `contains` on a number)."),
    "E306": _e("not a condition", "A yes/no condition is expected here, but the expression gives a value."),
    "E307": _e("step window outside a step", "`since STEP` is only meaningful in a step's `unless`/`if` or in a goal."),
    "E215": _e("materialize names no segment or classification", "`materialize NAME, ... daily at HH:MM` snapshots segments and classifications into the label history; each NAME must be a segment or a classification declared in the workspace, named once."),
    "E216": _e("history of a classification that is not materialised", "`C was X 90d ago` and `moved C from X to Y within 30d` read the label history, which only a `materialize C daily at HH:MM` declaration keeps: C must be a classification named by one."),
    "E401": _e("impossible date or time", "The date does not exist (2026-02-30) or the time of day is out of range (25:00)."),
    "E402": _e("unknown time zone", "Time zones are IANA names such as \"Asia/Shanghai\" or \"Europe/London\"."),
    "E403": _e("range ends before it starts", "A `from .. to ..` range whose end is before its start."),
    "E404": _e("percent out of range", "A percentage must lie between 0% and 100%; A/B variants must add up to 100%."),
    "E405": _e("bad cron expression", "The cron string is not a valid five-field cron expression."),
    "E406": _e("unknown weekday", "Weekdays are monday, tuesday, wednesday, thursday, friday, saturday, sunday."),
    "E407": _e("classification order", "`otherwise` must be the last rule of a classification, and appear at most once."),
    "E408": _e("value out of range", "A number that cannot be right here: a negative budget or cost, a red packet floor above its value, a zero cap window, a count that must be positive."),
    "E409": _e("goal needs a window", "A goal says what counts as success and for how long after the touch: `goal any(orders) within 14d`."),
    "E410": _e("NUL in text", "A quoted text contains the NUL character (\\u0000), which no database column can hold."),
    "E411": _e("number out of range", "A number must stay below 10^18 with at most 10 decimals; counts (caps, priorities) at most 2,147,483,647: what every engine camp targets can hold."),
    "E412": _e("money out of range", "An amount must fit the ledger's DECIMAL(18,4): below 10^14 with at most 4 decimals; costs and resource values per recipient at most 1,000,000, and coupon and red packet values at most 2 decimals."),
    "E413": _e("duration too long", "Windows, delays and intervals are at most 100 years (36,525 days, 1,200 months), so every date computed from them stays in the supported range."),
    "E414": _e("date out of range", "Dates lie between 1900-01-01 and 2999-12-31, the range camp supports on every engine."),
    "E415": _e("schedule never fires", "The cron expression or weekly schedule matches no time at all (30 February), or none between the campaign's start and end dates."),
    "E417": _e("local time needs a time of day", "`tz user` sends at the schedule's time of day in each user's own zone: it goes with `daily at`, weekly `at` and `once at`, not with cron, intervals or events."),
    "E416": _e("user fact inside an event query", "An event query's `where` tests each event on its own fields; segments, classifications, tags, `user.` fields and other event queries are about the user and belong beside it: `segment vip and any(orders where amount > 100 CNY)`."),
    "E418": _e("redeemed() of an unknown coupon", "`redeemed(CODE)` holds for a user who redeemed a coupon of that code issued by this campaign (in a follow-up step: in this journey). CODE must be a coupon the campaign's `what` section gives; a `segment` or `classify` belongs to no campaign, so it cannot test `redeemed` at all."),
    "E440": _e("alert incomplete or wrong", "An `alert` needs `who` (a condition over users), `when` (a schedule: its period; not an event), `threshold count >= N` or `threshold share >= P%`, and `send to TEAM` (a `[teams.TEAM]` of camp.toml); `sample` is 0 to 100 users."),
    "E420": _e("a value joined with `or`", "`or` joins two conditions, so `lifecycle = silent or churned` reads as `(lifecycle = silent) or churned`, and `churned` alone is not a condition. To test one thing against several values, list them: `lifecycle in (silent, churned)`, `city in (\"北京\", \"上海\")`."),
    "E421": _e("coupon scope value is not a value", "A coupon's scope (`only category in (...)`) lists the values an order's field must hold for the coupon to apply: quoted text, numbers or labels, not fields: `only category in (\"美妆\", \"个护\")`."),
    "E430": _e("ntile needs a whole number of buckets", "`ntile(N, EXPR)` splits the population into N buckets of (nearly) equal size; N is written as a whole number from 1 to 10,000: `ntile(5, count(orders within 180d)) = 5` is the top quintile."),
    "E431": _e("percentile out of range", "`percentile(P, EXPR)` is the value P of the population is at or below, interpolated like SQL's percentile_cont; P is written as a percentage above 0% and at most 100%: `percentile(80%, sum(orders.amount within 365d))`."),
    "E432": _e("journey fact in a population statistic", "`percent_rank`, `ntile` and `percentile` rank every user (or those `among` a condition) at the as-of time, the same population for every campaign and step; `since STEP` and `redeemed(CODE)` are about one campaign's journey and cannot define it. Test them beside the statistic: `percent_rank(...) >= 80% and redeemed(HIGH20)`."),
    "E501": _e("template not found", "The template file does not exist under the workspace's template folder."),
    "E502": _e("template syntax error", "The Jinja2 template does not parse."),
    "E503": _e("template uses an unknown field", "The template reads a variable or field that camp will not provide (check the schema and the WHAT section)."),
    "E504": _e("unknown template filter", "The template uses a filter that the sandbox does not provide."),
    "E505": _e("template over a limit", "A template renders within a budget per message (time, size of every value it builds, call depth; docs/runtime.md). A constant expression that always goes over it, such as `\"%999999999d\" % 1` or `9**(9**9)`, or a template file over 64 KiB, is refused by `camp check`."),
    "E510": _e("unusable template name", "The template name cannot name a file: it contains a control character (such as NUL), a part longer than the 255 bytes a file name may have, or is longer than 1,024 bytes; or the file system cannot look it up (a symbolic link that points to itself)."),
    "W101": _w("trigger event also in the audience", "The event that triggers the campaign is also counted in WHO; the triggering event itself is already in the table when the audience is evaluated, which usually makes the filter wrong (e.g. `count(orders) = 0` never holds)."),
    "W102": _w("branches overlap", "Two `if` branches of one step can both hold for the same user; only the first is taken. Make the conditions exclusive or order them deliberately."),
    "W103": _w("cap makes a step unreachable", "A frequency cap allows fewer messages in its window than the steps send, so a later step can never reach anyone who got the earlier ones."),
    "W104": _w("budget smaller than one send", "The budget cannot pay for even one recipient (message cost plus coupon value times expected redemption)."),
    "W105": _w("exclusive campaigns overlap", "Two campaigns of the same exclusive group can run at the same time for the same users."),
    "W106": _w("empty file", "The file declares nothing (it is empty or holds only comments); delete it or add declarations."),
    "W107": _w("suppression that does nothing", "A `# camp: ignore[CODE]` comment names a code that is not a warning (errors cannot be ignored) or nothing it could apply to was reported on its line; remove it or fix the code."),
}
