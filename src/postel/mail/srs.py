"""Sender Rewriting Scheme: the envelope sender of mail postel forwards to another domain
is rewritten into an address of ours, so the next hop's SPF check sees our domain, and a
bounce to that address can be routed back to the original sender.

Forms (the Shevek SRS specification, as implemented by postsrsd and Postfix + PostSRSd):

* ``SRS0=HHHH=TT=orig-domain=orig-local@our-domain`` for an ordinary sender;
* ``SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@our-domain`` when the
  sender is already an SRS0 address of another forwarder (so the path stays one hop
  long).

``HHHH`` is the first ``SRS_HASH_LENGTH`` characters of the base64 HMAC-SHA1 of the
rest, keyed with a secret; ``TT`` the day (mod 1024) in base32. A reverse address is
accepted only with a valid hash (compared without regard to case: some MTAs fold local
parts) and a timestamp at most ``SRS_MAX_AGE_DAYS`` old, so postel never becomes a
bounce relay for forged addresses.

Bounds defined here: ``SRS_HASH_LENGTH``, ``SRS_MAX_AGE_DAYS`` and ``SRS_LOCAL_PART_MAX``
(RFC 5321 §4.5.3.1.1: 64 octets; longer rewritten addresses are refused, not truncated).

Spec: RFC 7208 §3.3 and Appendix D (forwarding breaks SPF unless the sender is
rewritten); the SRS paper (Shevek, 2004); RFC 5321 §3.9 (forwarding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

SRS_HASH_LENGTH = 4
"""Base64 characters of the HMAC kept (24 bits; postsrsd's default)."""
SRS_MAX_AGE_DAYS = 21
"""Days a rewritten address stays valid for bounces (postsrsd's default)."""
SRS_LOCAL_PART_MAX = 64
"""Longest local part we produce. Spec: RFC 5321 §4.5.3.1.1."""
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SEPARATORS = "=-+"


class SrsError(ValueError):
    """Not a valid SRS address of ours: bad form, bad hash, or too old."""


@dataclass(frozen=True, slots=True)
class Srs:
    """Rewrites and reverses with ``secret`` (bytes, at least 16) for ``domain``
    (ours, lower-case). Spec: see the module docstring."""

    secret: bytes
    domain: str

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("SRS secret must be at least 16 bytes")
        if not self.domain or "@" in self.domain:
            raise ValueError(f"bad SRS domain {self.domain!r}")

    def forward(self, sender: str, day: int) -> str:
        """The rewritten envelope sender for ``sender`` (``local@domain``) on ``day``
        (days since the epoch). The null sender and addresses of our own domain are
        returned as they are. Raises SrsError when the result would be too long.
        Spec: RFC 7208 Appendix D."""
        if not sender or "@" not in sender:
            return sender
        local, _, domain = sender.rpartition("@")
        if domain.lower() == self.domain:
            return sender
        upper = local[:5].upper()
        if upper.startswith("SRS0") and len(local) > 5 and local[4] in _SEPARATORS:
            # Another forwarder's SRS0=HHHH=TT=d=l becomes SRS1=hhhh=that-forwarder==HHHH=...
            body = f"{domain}={local[4:]}"
            rewritten = f"SRS1={self._hash(body)}={body}"
        elif upper.startswith("SRS1") and len(local) > 5 and local[4] in _SEPARATORS:
            # SRS1=HHHH=first==...: keep the first forwarder's part, sign it for us.
            _, sep, body = local[5:].partition("=")
            if not sep or "==" not in body:
                raise SrsError(f"malformed SRS1 address {sender!r}")
            rewritten = f"SRS1={self._hash(body)}={body}"
        else:
            body = f"{_timestamp(day)}={domain}={local}"
            rewritten = f"SRS0={self._hash(body)}={body}"
        if len(rewritten) > SRS_LOCAL_PART_MAX:
            raise SrsError(f"rewritten sender longer than {SRS_LOCAL_PART_MAX} octets")
        return f"{rewritten}@{self.domain}"

    def reverse(self, address: str, day: int) -> str:
        """The address a bounce to ``address`` (one of ours) goes to: the original
        sender (SRS0) or the first forwarder's SRS0 address (SRS1). Raises SrsError for
        a bad form, a bad hash or an SRS0 timestamp older than ``SRS_MAX_AGE_DAYS``."""
        local, _, domain = address.rpartition("@")
        if domain.lower() != self.domain or len(local) < 6 or local[4] not in _SEPARATORS:
            raise SrsError(f"not an SRS address of {self.domain}: {address!r}")
        kind, body = local[:4].upper(), local[5:]
        given, sep, rest = body.partition("=")
        if not sep or not hmac.compare_digest(given.lower(), self._hash(rest).lower()):
            raise SrsError(f"bad SRS hash in {address!r}")
        if kind == "SRS0":
            stamp, _, tail = rest.partition("=")
            orig_domain, _, orig_local = tail.partition("=")
            if not orig_domain or not orig_local:
                raise SrsError(f"malformed SRS0 address {address!r}")
            if _age(stamp, day) > SRS_MAX_AGE_DAYS:
                raise SrsError(f"SRS address {address!r} has expired")
            return f"{orig_local}@{orig_domain}"
        if kind == "SRS1":
            first, sep, tail = rest.partition("==")
            if not sep or not first or not tail:
                raise SrsError(f"malformed SRS1 address {address!r}")
            return f"SRS0={tail}@{first}"
        raise SrsError(f"not an SRS address: {address!r}")

    def is_srs(self, address: str) -> bool:
        """Whether ``address`` looks like an SRS address of our domain (not checked)."""
        local, _, domain = address.rpartition("@")
        return (
            domain.lower() == self.domain
            and local[:4].upper() in ("SRS0", "SRS1")
            and len(local) > 5
            and local[4] in _SEPARATORS
        )

    def _hash(self, body: str) -> str:
        digest = hmac.new(self.secret, body.lower().encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()[:SRS_HASH_LENGTH]


def _timestamp(day: int) -> str:
    value = day % 1024
    return _BASE32[value >> 5] + _BASE32[value & 31]


def _age(stamp: str, day: int) -> int:
    """Days since ``stamp`` (2 base32 characters) as of ``day``, modulo 1024."""
    stamp = stamp.upper()
    if len(stamp) != 2 or any(c not in _BASE32 for c in stamp):
        raise SrsError(f"bad SRS timestamp {stamp!r}")
    then = _BASE32.index(stamp[0]) << 5 | _BASE32.index(stamp[1])
    return (day % 1024 - then) % 1024
