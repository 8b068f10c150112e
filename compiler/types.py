"""The types of the campaign language and the rules for comparing and combining them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Type:
    """kind: text number money percent bool date timestamp enum label.

    money carries its currency, enum its values, label the classification it labels.
    """

    kind: str
    currency: str | None = None
    values: tuple[str, ...] = ()
    classification: str | None = None

    def __str__(self) -> str:
        if self.kind == "money":
            return f"money({self.currency})"
        if self.kind == "enum":
            return "enum(" + ", ".join(f'"{v}"' for v in self.values) + ")"
        if self.kind == "label":
            return f"a {self.classification} label"
        return self.kind

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "percent", "money")

    @property
    def temporal(self) -> bool:
        return self.kind in ("date", "timestamp")

    @property
    def textual(self) -> bool:
        return self.kind in ("text", "enum")


TEXT = Type("text")
NUMBER = Type("number")
PERCENT = Type("percent")
BOOL = Type("bool")
DATE = Type("date")
TIMESTAMP = Type("timestamp")


def money(currency: str) -> Type:
    return Type("money", currency=currency)


def comparable(a: Type, b: Type) -> str | None:
    """None when a and b can be compared; otherwise the diagnostic code that says why not."""
    if a.kind == "money" and b.kind == "money":
        return None if a.currency == b.currency else "E302"
    if a.kind in ("number", "percent") and b.kind in ("number", "percent"):
        return None
    if a.temporal and b.temporal:
        return None
    if a.textual and b.textual:
        return None
    if a.kind == b.kind and a.kind in ("bool", "label"):
        return None if a.classification == b.classification else "E301"
    return "E301"


def orderable(t: Type) -> bool:
    return t.numeric or t.temporal or t.kind == "text"
