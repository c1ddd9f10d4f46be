"""IMAP URLs naming one message or one of its sections: the absolute form
``imap://user@host/mailbox;UIDVALIDITY=n/;UID=n/;SECTION=s/;PARTIAL=o.l`` and the
path-absolute form ``/mailbox/;UID=n...`` that CATENATE accepts, with the URLAUTH
parts ``;EXPIRE=``, ``;URLAUTH=access`` and ``:mechanism:token``.

Only message and section URLs are parsed (a search or a list URL is an error).
Mailbox names are percent-decoded UTF-8; the section is parsed as FETCH parses it.

Spec: RFC 5092 §3 (URL schemes, ABNF), §5 (relative forms), §6 (icommand);
RFC 4467 §3 (URLAUTH-authorized URLs), §7 (authorization token).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import urllib.parse
from dataclasses import dataclass

from postel.errors import ProtocolError
from postel.imap.fetch_items import Section
from postel.imap.grammar import ImapProtocolError
from postel.imap.parse_fetch import parse_section

__all__ = ["IMAP_URL_MAX", "AccessKind", "ImapUrl", "ImapUrlError", "parse_imap_url"]

IMAP_URL_MAX = 4096
"""Octets of one IMAP URL accepted in CATENATE, GENURLAUTH and URLFETCH (local policy;
RFC 5092 sets no bound, every URL must still fit the command line limit)."""

_UID = re.compile(r"/;uid=([1-9][0-9]{0,9})", re.IGNORECASE)
_UIDVALIDITY = re.compile(r";uidvalidity=([1-9][0-9]{0,9})$", re.IGNORECASE)
_TAIL = re.compile(
    r"(?:/;section=(?P<section>[^/;]*))?"
    r"(?:/;partial=(?P<start>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?"
    r"(?:;expire=(?P<expire>[^;]+))?"
    r"(?:;urlauth=(?P<access>[^:;]+)(?::(?P<mech>[A-Za-z0-9\-.]+):(?P<token>[A-Za-z0-9\-._~%]+))?)?$",
    re.IGNORECASE,
)


class ImapUrlError(ProtocolError):
    """Not a message or section IMAP URL this server can use. Spec: RFC 5092 §3."""


class AccessKind(enum.StrEnum):
    """Who may use a URLAUTH-authorized URL. Spec: RFC 4467 §3."""

    SUBMIT = "submit"
    USER = "user"
    AUTHUSER = "authuser"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """One parsed message URL.

    ``user``/``host`` are None in the path-absolute form. ``partial`` is (offset,
    length or None). ``access_user`` is set with SUBMIT and USER access. ``rump`` is
    the URL up to and including the access identifier (what the token signs).
    Spec: RFC 5092 §3; RFC 4467 §3, §7.
    """

    user: str | None
    host: str | None
    mailbox: str
    uidvalidity: int | None
    uid: int
    section: Section | None
    section_text: str | None
    partial: tuple[int, int | None] | None
    expire: dt.datetime | None = None
    access: AccessKind | None = None
    access_user: str | None = None
    mechanism: str | None = None
    token: str | None = None
    rump: str = ""


def parse_imap_url(text: str, *, absolute: bool) -> ImapUrl:
    """Parse ``text``; ``absolute`` True requires ``imap://``, False requires the
    path-absolute form of CATENATE. Raises ImapUrlError.
    Spec: RFC 5092 §3, §5; RFC 4469 §5 (url in CATENATE); RFC 4467 §3."""
    if len(text) > IMAP_URL_MAX:
        raise ImapUrlError("URL too long")
    user = host = None
    if absolute:
        if text[:7].lower() != "imap://":
            raise ImapUrlError("not an imap:// URL")
        authority, slash, path = text[7:].partition("/")
        if not slash:
            raise ImapUrlError("URL names no message")
        userinfo, at, host_port = authority.rpartition("@")
        if not at or not userinfo:
            raise ImapUrlError("URL names no user")
        user = _decode(userinfo.split(";", 1)[0])
        host = host_port.split(":", 1)[0].lower()
        path = "/" + path
    else:
        path = text
        if not path.startswith("/") or path.startswith("//"):
            raise ImapUrlError("expected a path-absolute IMAP URL")
    match = _UID.search(path)
    if match is None:
        raise ImapUrlError("URL names no UID")
    mailbox_ref = path[1 : match.start()]
    uidvalidity = None
    found = _UIDVALIDITY.search(mailbox_ref)
    if found is not None:
        uidvalidity = _number32(found.group(1), "UIDVALIDITY")
        mailbox_ref = mailbox_ref[: found.start()]
    if not mailbox_ref:
        raise ImapUrlError("URL names no mailbox")
    tail = _TAIL.match(path, match.end())
    if tail is None:
        raise ImapUrlError("bad URL after the UID")
    uid = _number32(match.group(1), "UID")
    return _build(text, user, host, _decode(mailbox_ref), uidvalidity, uid, tail)


NUMBER32_MAX = 4294967295
"""The largest UID, UIDVALIDITY and PARTIAL number of a URL. Spec: RFC 5092 §11 (the
ABNF's nz-number and number are RFC 3501's, unsigned 32-bit)."""


def _number32(digits: str, what: str) -> int:
    value = int(digits)
    if value > NUMBER32_MAX:
        raise ImapUrlError(f"{what} {digits} is above {NUMBER32_MAX}")
    return value


def _build(
    text: str,
    user: str | None,
    host: str | None,
    mailbox: str,
    uidvalidity: int | None,
    uid: int,
    tail: re.Match[str],
) -> ImapUrl:
    section = section_text = None
    if tail.group("section") is not None:
        section_text = _decode(tail.group("section"))
        if not section_text:
            raise ImapUrlError("bad section in URL")  # enc-section = 1*bchar (RFC 5092 §11)
        try:
            section = parse_section(section_text.encode("utf-8"))
        except ImapProtocolError as exc:
            raise ImapUrlError("bad section in URL") from exc
    partial = None
    if tail.group("start") is not None:
        length = tail.group("length")
        partial = (
            _number32(tail.group("start"), "PARTIAL offset"),
            _number32(length, "PARTIAL length") if length else None,
        )
    expire = None
    if tail.group("expire") is not None:
        try:
            expire = dt.datetime.fromisoformat(_decode(tail.group("expire")))
        except ValueError as exc:
            raise ImapUrlError("bad EXPIRE date-time") from exc
        if expire.tzinfo is None:
            raise ImapUrlError("EXPIRE needs a time zone")
    access, access_user = _access(tail.group("access"))
    rump = text
    if tail.group("mech") is not None:
        # ``tail`` matched the path, which ends the text: count back from the end.
        rump = text[: len(text) - (len(tail.string) - tail.start("mech") + 1)]
    return ImapUrl(
        user,
        host,
        mailbox,
        uidvalidity,
        uid,
        section,
        section_text,
        partial,
        expire,
        access,
        access_user,
        tail.group("mech"),
        tail.group("token"),
        rump,
    )


def _access(raw: str | None) -> tuple[AccessKind | None, str | None]:
    if raw is None:
        return None, None
    lowered = raw.lower()
    for kind in (AccessKind.SUBMIT, AccessKind.USER):
        if lowered.startswith(kind.value + "+"):
            name = _decode(raw[len(kind.value) + 1 :])
            if not name:
                raise ImapUrlError("access identifier names no user")
            return kind, name
    if lowered in (AccessKind.AUTHUSER.value, AccessKind.ANONYMOUS.value):
        return AccessKind(lowered), None
    raise ImapUrlError("unknown URLAUTH access identifier")


def _decode(text: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ImapUrlError("URL is not UTF-8") from exc
