"""Errors of SPF evaluation, each carrying the SPF result it stands for.

Record and macro parsers raise only ``SpfSyntaxError`` for bad input; ``check_host``
turns every error here into a result and never lets one escape.

Spec: RFC 7208 §2.6.6 (temperror), §2.6.7 (permerror), §4.6, §7.1.
"""

from __future__ import annotations

from postel.errors import PostelError, ProtocolError


class SpfError(PostelError):
    """Root of SPF errors; ``reason`` is a short text for logs. Spec: RFC 7208 §2.6."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SpfSyntaxError(SpfError, ProtocolError):
    """An SPF record or macro string that does not follow the grammar: permerror.

    Spec: RFC 7208 §4.6, §7.1, §12.
    """


class SpfPermError(SpfError):
    """A permanent evaluation error (processing limit, include of a domain without a
    record, redirect to nothing): permerror. Spec: RFC 7208 §2.6.7, §4.6.4, §5.2, §6.1."""


class SpfTempError(SpfError):
    """A transient DNS error during evaluation: temperror. Spec: RFC 7208 §2.6.6, §5."""
