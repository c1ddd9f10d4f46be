"""Identifier types. NewTypes keep ids of different kinds from being mixed up."""

from __future__ import annotations

import secrets
from typing import NewType

AccountId = NewType("AccountId", int)
DomainId = NewType("DomainId", int)
MailboxId = NewType("MailboxId", int)
MessageId = NewType("MessageId", int)
"""Database row id of one message in one mailbox (not the RFC 5322 Message-ID)."""
QueueId = NewType("QueueId", str)
"""The id a transaction is known by in logs and in the 250 reply."""

_QUEUE_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXZ"
_QUEUE_ID_BASE = len(_QUEUE_ID_ALPHABET)


def new_queue_id(nbytes: int = 10) -> QueueId:
    """Return a fresh random queue id such as ``7KQ2M9XH4T``: ``nbytes`` symbols of a
    30-letter alphabet without vowels (no accidental words), ~4.9 bits each, from the
    operating system's random source."""
    value = int.from_bytes(secrets.token_bytes(nbytes), "big")
    symbols = []
    for _ in range(nbytes):
        value, digit = divmod(value, _QUEUE_ID_BASE)
        symbols.append(_QUEUE_ID_ALPHABET[digit])
    return QueueId("".join(symbols))
