"""IMAP QUOTA commands: GETQUOTA, GETQUOTAROOT and SETQUOTA, and their responses.

postel keeps one quota root per account, named ``""``, over all its mailboxes, with the
resources STORAGE (in units of 1024 octets) and MESSAGE. Limits are set by the
administrator (``postel account quota``); SETQUOTA is parsed so that it gets a proper
refusal, and QUOTASET is not advertised.

Spec: RFC 9208 §4 (commands), §5 (resources), §6 (responses), §9 (syntax).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from postel.imap.command_types import Command
from postel.imap.grammar import Cursor
from postel.imap.parse_mailbox import read_mailbox
from postel.imap.responses import astring, mailbox

__all__ = [
    "QUOTA_RESOURCES_MAX",
    "GetQuota",
    "GetQuotaRoot",
    "SetQuota",
    "parse_getquota",
    "parse_getquotaroot",
    "parse_setquota",
    "quota_response",
    "quotaroot_response",
]

QUOTA_RESOURCES_MAX = 16
"""Resources one SETQUOTA may list (local bound; RFC 9208 §5 defines six)."""
_RESOURCE_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """GETQUOTA quota-root. Spec: RFC 9208 §4.2."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """GETQUOTAROOT mailbox. Spec: RFC 9208 §4.3."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """SETQUOTA quota-root (resource limit ...). Spec: RFC 9208 §4.1."""

    root: str
    limits: tuple[tuple[str, int], ...]


def parse_getquota(cur: Cursor, tag: str, uid: bool) -> Command:
    """``GETQUOTA SP quota-root`` (an astring). Spec: RFC 9208 §9."""
    cur.sp()
    return GetQuota(tag, cur.text_utf8(cur.astring()))


def parse_getquotaroot(cur: Cursor, tag: str, uid: bool) -> Command:
    """``GETQUOTAROOT SP mailbox``. Spec: RFC 9208 §9."""
    cur.sp()
    return GetQuotaRoot(tag, read_mailbox(cur))


def parse_setquota(cur: Cursor, tag: str, uid: bool) -> Command:
    """``SETQUOTA SP quota-root SP "(" [resource SP number64 *(SP ...)] ")"``.
    Spec: RFC 9208 §9 (setquota, setquota-resource)."""
    cur.sp()
    root = cur.text_utf8(cur.astring())
    cur.sp()
    cur.expect(b"(")
    pairs: list[tuple[str, int]] = []
    if not cur.take(b")"):
        while True:
            name = cur.atom().upper()
            if len(name) > _RESOURCE_NAME_MAX:
                raise cur.error("resource name too long")
            cur.sp()
            pairs.append((name, cur.number64()))
            if len(pairs) > QUOTA_RESOURCES_MAX:
                raise cur.error("too many quota resources")
            if cur.take(b")"):
                break
            cur.sp()
    return SetQuota(tag, root, tuple(pairs))


def quota_response(root: str, resources: Sequence[tuple[str, int, int]]) -> bytes:
    """``* QUOTA root (NAME usage limit ...)`` (usage and limit in the resource's units).
    Spec: RFC 9208 §6.1."""
    body = b" ".join(f"{name} {used} {limit}".encode() for name, used, limit in resources)
    return b"* QUOTA " + astring(root) + b" (" + body + b")\r\n"


def quotaroot_response(name: str, roots: Sequence[str], *, utf8: bool = False) -> bytes:
    """``* QUOTAROOT mailbox root ...``. Spec: RFC 9208 §6.2."""
    out = b"* QUOTAROOT " + mailbox(name, utf8=utf8)
    for root in roots:
        out += b" " + astring(root)
    return out + b"\r\n"
