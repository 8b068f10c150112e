"""`camp emit share` (a share of a red packet, paid per the packet's rule into the ledger) and `camp points` (a
user's points balance): the runtime side is runtime.shares and the ledger's ResourceLedger. `packet_budgets`:
the campaigns' budgets payouts keep to (`camp sync` pays the shop's shares with them too)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from camp.audience import checked, parse_as_of

if TYPE_CHECKING:
    from compiler.program import Program
    from runtime.shares import PacketBudget


def run_share(path: Path, user: str, occurred: str | None, share_id: str | None, packet: str | None,
              ledger: str | None) -> int:
    """Exit status: 0 recorded (paid, refused, or known already), 1 errors in the workspace or the ledger."""
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    from camp.run import _ledger_or_say
    from runtime.shares import Share, pay_shares
    from runtime.warehouse import run_urls

    when = parse_as_of(occurred, program.timezone, "--occurred")
    lg = _ledger_or_say("camp emit share", run_urls(ws, None, ledger)[1])
    if lg is None:
        return 1
    sid = share_id or uuid.uuid4().hex
    try:
        paid = pay_shares(lg, [Share(sid, user, when, packet)], packet_budgets(program))
    finally:
        lg.close()
    if not paid:
        print(f"camp emit share: share {sid} is already recorded: nothing paid again")
        return 0
    p = paid[0]
    if p.state == "paid":
        print(f"camp emit share: share {sid} of user {user}: share #{p.nth} of {p.campaign}, paid {p.amount}")
    else:
        print(f"camp emit share: share {sid} of user {user}: refused ({p.reason})")
    return 0


def packet_budgets(program: Program) -> dict[str, PacketBudget]:
    """Each campaign's budget, which red packet payouts may not exceed."""
    from runtime.shares import PacketBudget

    return {c.name: PacketBudget(c.budget_total.amount if c.budget_total else None,
                                 c.budget_daily.amount if c.budget_daily else None, program.timezone)
            for c in program.campaigns.values()}


def run_points(path: Path, user: str, ledger: str | None) -> int:
    from camp.read_ledger import workspace_ledger

    lg = workspace_ledger("camp points", path, ledger)
    if isinstance(lg, int):
        return lg
    try:
        issued, pending = lg.points_balance(user)
    finally:
        lg.close()
    print(f"user {user}: {issued} points issued" + (f", {pending} pending issue" if pending else ""))
    return 0
