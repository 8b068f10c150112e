"""Lark's parse errors -> messages for people who write campaigns, not parsers.

"expected a duration like `7d` after `within`, found `7`" instead of a token dump.
"""

from __future__ import annotations

import difflib
import re

from lark.exceptions import UnexpectedCharacters, UnexpectedToken

_PHRASES = {
    "DURATION": "a duration like `7d`",
    "NUMBER": "a number",
    "STRING": 'a quoted text like "vip"',
    "NAME": "a name",
    "PERCENT": "a percentage like `10%`",
    "DATE": "a date like `2026-12-01`",
    "DATETIME": "a date and time like `2026-11-11 00:00`",
    "TIME": "a time of day like `10:00`",
    "CURRENCY": "a currency code like `CNY`",
    "COMP_OP": "a comparison like `>=`",
    "EQ": "`=`",
    "HOW_MUCH": "`how much`",
    "TYPE_NAME": "a type (text, number, bool, date, timestamp, money(CNY), enum(...))",
    "$END": "the end of the file",
    "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`", "COLON": "`:`",
    "DOT": "`.`", "MINUS": "`-`", "PLUS": "`+`", "MUL_OP": "`*` or `/`",
}
_ORDER = ["DURATION", "PERCENT", "DATE", "DATETIME", "TIME", "STRING", "NUMBER", "CURRENCY", "TYPE_NAME", "NAME"]
_UNIT_HINT = "add a unit: `30m` minutes, `12h` hours, `7d` days, `2w` weeks, `3mo` months"


_DECLS = ("declarations start a line with `campaign`, `segment`, `classify`, `policy`, `users`, `events`, `tags` "
          "or `consent`; a stray word here often means the declaration above ended early or has an extra `}`")
_EVENT_WINDOW = ("an event query takes a window and a filter: `count(orders within 30d where brand = \"x\")`; "
                 "windows: `within 7d`, `before 30d ago`, `between 30d and 7d ago`, `since touch`")

# (terminals that must all be expected, the hint): the first that fits the parser's expectations wins, so the
# more specific places (a campaign's sections, `how much`) come before the general ones (a name, a number).
# A key starting with `=` fits only when the parser expects nothing but (some of) those terminals.
_FORMS: tuple[tuple[frozenset[str], bool, str], ...] = tuple(
    (frozenset(k.lstrip("=").split()), k.startswith("="), v) for k, v in (
    ("CAMPAIGN SEGMENT", _DECLS),
    ("HOW OWNER", "a campaign's sections are `why`, `who`, `what`, `when`, `where`, `how` and `how much` (and "
                  "`owner \"name\"`), each followed by its content; `}` closes the campaign"),
    ("TYPE_NAME", 'a field is a name and a type: `city text`, `amount money(CNY)`, `level enum("gold", "silver")`'),
    ("WITHIN SINCE", _EVENT_WINDOW),
    ("BUDGET CAP", "`how much` takes `budget 5000 CNY total`, `cap 2 messages per user per 7d`, `cost sms 0.05 CNY`, "
                   "`quiet 22:00-08:00`, `expect redemption 8%`, `priority 10` or `exclusive \"group\"`"),
    ("CAP QUIET", "a policy holds `cap 3 sms per user per 7d`, `cost sms 0.05 CNY`, `quiet 22:00-08:00` and "
                  "`exclusive group \"name\"`; `}` closes it"),
    ("GOAL TARGET", "after the objective: `goal any(orders) within 14d` and `target conversion >= 5%`"),
    ("EXCLUDE HOLDOUT", "join conditions with `and` / `or`; after the audience come `exclude segment NAME`, "
                        "`holdout 10%` or the next section"),
    ("COMMA ELSE", "after a channel: `else CHANNEL` for a fallback; actions are joined with `,`: "
                   "`step touch: give what, notify where`"),
    ("COUPON POINTS", "`what` offers `coupon NAME { value 20 CNY }`, `points 100`, `red_packet NAME { value 5 CNY }` "
                      "or `message`"),
    ("VALUE USABLE", "a coupon holds `value 20 CNY`, `min_spend 200 CNY`, `usable 7d after issue` and "
                     "`only category in (\"beauty\")`; `}` closes it"),
    ("SHARE VALUE", "a red packet holds `value 5 CNY` and `share decay 20% floor 1 CNY after 3`"),
    ("DAILY CRON", "`when` takes `daily at 10:00`, `every monday at 10:00`, `every 7d`, `once at 2026-12-01 10:00`, "
                   "`cron \"0 10 * * *\"` or `on orders`"),
    ("FROM TZ", "after the schedule: `from 2026-12-01 to 2026-12-31`, `until 2026-12-31` or `tz \"Asia/Shanghai\"`"),
    ("UNLESS COLON", "a step: `step reminder after 3d unless any(orders since touch): notify sms`"),
    ("STEP", "`how` lists steps: `step touch: give what, notify where`"),
    ("AGO", "a window in the past ends with `ago`: `before 30d ago`, `between 30d and 7d ago`"),
    ("NULL TODAY", "after `is`: `is null`, `is not null` or `is today`"),
    ("FIRST", "`classify NAME by first match { LABEL = condition ... }`"),
    ("MATCH", "`classify NAME by first match { LABEL = condition ... }`"),
    ("BY", "`classify NAME by first match { ... }`, or a tiered cap: `cap email per user per 7d by engagement { ... }`"),
    ("AT", "a time of day follows `at`: `daily at 10:00`, `every monday, friday at 10:00, 20:00`"),
    ("TABLE", "`users from table users key user_id { ... }`, "
              "`events orders from table orders user user_id time created_at { ... }`"),
    ("KEY USER", "`users from table users key user_id { ... }`; `tags from table user_tags user user_id tag tag`"),
    ("USER", "`cap 2 messages per user per 7d`; in the schema, `user user_id` names the user column"),
    ("PER", "`cap 2 messages per user per 7d`, `budget 500 CNY per day`"),
    ("GROUP", "a policy declares a group: `exclusive group \"name\"`"),
    ("REDEMPTION", "`expect redemption 8%`"),
    ("ISSUE", "`usable 7d after issue`"),
    ("COMP_OP EQ", "a condition compares a field with a value: `city = \"北京\"`, `count(orders within 30d) >= 2`"),
    ("=EQ STRING", "a name, an optional quoted title, then `=` and the condition: "
           "`segment vip \"大客户\" = sum(orders.amount within 365d) >= 5000 CNY`"),
    ("NAME NUMBER STRING LPAR", "a condition compares a field with a value: `city = \"北京\"`, "
                                "`count(orders within 30d) >= 2`, `tagged \"vip\"`, `segment loyal`"),
    ("LBRACE", "a name and an optional quoted title come before `{`: `campaign winback \"召回\" {`, "
               "`coupon SAVE20 \"满减\" {`"),
    ("RPAR COMMA", "separate the items with `,` and close the list with `)`"),
    ("RPAR", "close the parenthesis with `)`"),
    ("COLON", "a step's head ends with `:` before its actions: `step touch: notify where`"),
    ("DURATION", "add a unit: `30m` minutes, `12h` hours, `7d` days, `2w` weeks, `3mo` months"),
    ("PERCENT", "a percentage like `10%`"),
    ("STRING", 'texts are written in double quotes: "winback/push.j2"'),
    ("CURRENCY", "currency codes are three capital letters: `CNY`, `USD`, `EUR`"),
    ("NUMBER", "write a number, like `3` or `0.5`"),
    ("DATE", "dates are written `2026-12-01`"),
    ("TIME", "times of day are written `10:00`"),
    ("COMP_OP", "compare with `=`, `!=`, `<`, `<=`, `>` or `>=`"),
    ("NAME", "a name is letters, digits and `_`, starting with a letter: `winback_2026`"),
))


def form_hints(expected: set[str], found: str | None) -> list[str]:
    """What to write here: did-you-mean for a misspelt keyword, else the form the parser expects, by example."""
    hints = []
    keywords = [n.lower() for n in expected if n.isupper() and n.replace("_", "").isalpha() and n not in _PHRASES]
    if found and re.fullmatch(r"\w+", found):
        close = difflib.get_close_matches(found.lower(), keywords, n=2, cutoff=0.75)
        if close:
            hints.append("did you mean " + " or ".join(f"`{c}`" for c in close) + "?")
    if found == "}" and {"CAMPAIGN", "SEGMENT"} <= expected:
        return ["this `}` closes nothing: remove it, or look above for the `{` it was meant to close"]
    form = next((hint for need, exact, hint in _FORMS if (expected <= need if exact else need <= expected)), None)
    if form is not None and not hints:
        hints.append(form)
    elif form is None and not hints and expected:
        ordered = [n for n in _ORDER if n in expected] + sorted(n for n in expected if n not in _ORDER)
        hints.append(f"write {_phrase(ordered[0])} here")
    return hints


def _phrase(name: str) -> str:
    if name in _PHRASES:
        return _PHRASES[name]
    if name.isupper() and name.replace("_", "").isalpha():
        return f"`{name.lower()}`"
    return f"`{name}`"


def _expected(names: set[str]) -> str:
    names = {n for n in names if n not in ("COMMENT",)}
    if {"NAME", "NUMBER", "STRING", "LPAR"} <= names:
        words = ["a condition or value" if "NOT" in names else "a value"]
        words += [_phrase(n) for n in sorted(names & {"RPAR", "RBRACE", "COLON", "COMMA"})]
    else:
        ordered = [n for n in _ORDER if n in names] + sorted(n for n in names if n not in _ORDER)
        words = [_phrase(n) for n in ordered]
        if len(words) > 7:
            words = words[:6] + ["…"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _previous_word(text: str, offset: int) -> str | None:
    before = re.sub(r"#[^\n]*", "", text[:offset]).rstrip()
    m = re.search(r"(\w+|[^\w\s])$", before)
    return m.group(1) if m else None


def _found(text: str, offset: int, token) -> str:
    if token is not None and token.type == "$END":
        return "the end of the file"
    word = re.match(r"\w+|\S", text[offset:])
    return f"`{word.group(0)}`" if word else "the end of the file"


def describe_unexpected(error: Exception, text: str, offset: int) -> tuple[str, list[str]]:
    hints: list[str] = []
    prev = _previous_word(text, offset)
    after = f" after `{prev}`" if prev else ""
    line = text[text.rfind("\n", 0, offset) + 1: (text.find("\n", offset) + 1 or len(text) + 1) - 1]
    if isinstance(error, UnexpectedCharacters):
        ch = text[offset] if offset < len(text) else ""
        if ch == '"':
            return "this text has no closing quote", ['close it on the same line: "like this"']
        if ch in "&|!":
            word = {"&": "and", "|": "or", "!": "not"}[ch]
            return f"unexpected `{ch}`", [f"write `{word}`" + (" (`!=` compares)" if ch == "!" else "")]
        if ch == "'":
            hints.append('texts are written in double quotes: "vip"')
        allowed = getattr(error, "allowed", None) or set()
        msg = f"unexpected character `{ch}`" + after
        if allowed:
            msg += f"; expected {_expected(set(allowed))}"
        if not hints:
            hints = [f"remove `{ch}`" + (f", or write {_expected(set(allowed))} instead" if allowed else "")]
        return msg, hints
    token = getattr(error, "token", None)
    expected: set[str] = set(getattr(error, "expected", None) or getattr(error, "accepts", None) or ())
    found = _found(text, offset, token)
    msg = f"expected {_expected(expected)}{after}, found {found}" if expected else f"unexpected {found}{after}"
    if isinstance(error, UnexpectedToken) and token is not None:
        if "DURATION" in expected and token.type == "NUMBER":
            hints.append(_UNIT_HINT)
        if str(token) == "=" and text[offset - 1: offset] == "=":
            hints.append("compare with a single `=`")
        if prev == "where" and re.search(r"\bwhen\s+on\b", line) or (
                token.type in ("EQ", "COMP_OP") and re.search(r"^\s*where\b", line)
                and re.search(r"\bwhen\s+on\s+\w+[^\n]*$", text[:text.rfind("\n", 0, offset)].rstrip())):
            hints.append('an event trigger is filtered with `if`: `when on visits if source = "app"`')
        if "CURRENCY" in expected and token.type == "NAME":
            hints.append("currency codes are three capital letters: `CNY`, `USD`, `EUR`")
        if token.type == "RBRACE" and "TIME" in expected:
            hints.append("times of day are written `10:00`")
    if not hints:
        word = re.match(r"\w+|\S", text[offset:])
        hints = form_hints(expected, word.group(0) if word and token is not None and token.type != "$END" else None)
    return msg, hints
