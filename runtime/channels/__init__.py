"""Channel adapters: a Message in, a provider message id out (or a failure that says whether to fall back).

The interface (`Channel`) is what an SMS or push provider plugs into: subclass it, implement
`send`, register the class in `KINDS` (or name it in camp.toml as `kind = "package.module:Class"`).
Configuration comes from camp.toml `[channels.NAME]` (`kind` and `settings`); secrets never do:
a setting named `*_env` names an environment variable, `*_block` a Prefect Secret block.

Delivery is at least once towards the provider and exactly once in the ledger: every message
carries its idempotency key (`Idempotency-Key` header, SMTP `Message-ID`), the same on a retry
after a crash, so a provider or receiver that honours it sees each delivery once. The outbox
writes in the ledger's own transaction, so it is exactly once outright.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any


class PermanentFailure(Exception):
    """This user cannot be reached on this channel (bad address, 4xx): try the next channel."""


class TransientFailure(Exception):
    """The provider failed after the adapter's retries (5xx, timeouts): logged as failed."""


@dataclass
class Message:
    key: str  # idempotency key: campaign/step/occurrence/user
    campaign: str
    step: str
    occurrence: str
    user_id: str
    channel: str
    address: str | None
    subject: str | None
    body: str
    plan_hash: str
    data: dict[str, Any] = field(default_factory=dict)  # coupon, variant: for providers that want structure


class Channel:
    """One configured channel. `transactional` adapters write inside the ledger transaction (outbox).

    Non-transactional adapters are called from several threads at once (`concurrency` of them; camp.toml's
    `[channels.NAME] concurrency`, else `default_concurrency`): `send` must be thread-safe. Dispatch waits for the
    channel's rate limit (`limiter`) before each message; an adapter that retries calls `pace()` before each retry,
    so retries count against the limit too, as the provider counts them."""

    transactional = False
    default_concurrency = 1

    def __init__(self, name: str, settings: dict[str, Any]):
        self.name = name
        self.settings = settings
        self.concurrency = self.default_concurrency
        self.limiter: Any = None  # runtime.ratelimit.Limiter, set by the run's Channels when camp.toml gives a rate

    def pace(self) -> None:
        """Wait until the channel's rate limit lets one more request go (at once without a `rate`)."""
        if self.limiter is not None:
            self.limiter.acquire()

    def send(self, message: Message) -> str:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def secret(self, key: str, default: str | None = None) -> str | None:
        """`KEY_env = "VAR"` reads $VAR; `KEY_block = "name"` a Prefect Secret block; `KEY` itself is
        only for values that are not secret."""
        if f"{key}_env" in self.settings:
            var = str(self.settings[f"{key}_env"])
            if var not in os.environ:
                raise PermanentFailure(f"channel {self.name}: environment variable {var} is not set")
            return os.environ[var]
        if f"{key}_block" in self.settings:
            from prefect.blocks.system import Secret

            # prefect types the sync-compatible Block.load as returning a coroutine too; from sync code it loads
            return Secret.load(str(self.settings[f"{key}_block"])).get()  # pyright: ignore[reportAttributeAccessIssue]
        value = self.settings.get(key, default)
        return None if value is None else str(value)


class Console(Channel):
    """Prints each message: for demos."""

    def send(self, message: Message) -> str:
        import click

        click.echo(f"[{message.channel} → {message.user_id}] {message.body}")
        return f"console:{message.key}"


class Outbox(Channel):
    """Writes messages to the ledger's camp_outbox table for another system to pick up (the default)."""

    transactional = True

    def send(self, message: Message) -> str:  # the engine bulk-writes outbox rows itself
        return f"outbox:{message.key}"


def _kinds() -> dict[str, type[Channel]]:
    from runtime.channels.smtp import Smtp
    from runtime.channels.webhook import Webhook

    return {"outbox": Outbox, "console": Console, "smtp": Smtp, "email": Smtp, "webhook": Webhook}


def make_channel(name: str, config: dict[str, dict]) -> Channel:
    """The adapter for a channel name: camp.toml's `[channels.NAME]`, else `console` for console and the
    outbox for everything else (push, sms, email... until a provider is configured)."""
    spec = config.get(name)
    if spec is None:
        return Console(name, {}) if name == "console" else Outbox(name, {})
    kind = spec.get("kind", "outbox")
    kinds = _kinds()
    if kind in kinds:
        cls = kinds[kind]
    elif ":" in kind:
        module, _, attr = kind.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        raise ValueError(f"channel {name}: unknown kind {kind!r}; known: {', '.join(kinds)} or module:Class")
    channel = cls(name, dict(spec.get("settings", {})))
    if spec.get("concurrency"):
        channel.concurrency = int(spec["concurrency"])
    return channel
