"""Error types shared by every layer.

Errors carry their protocol meaning: temporary and permanent failures are distinct
classes so that a driver can map them to 4xx/5xx replies without inspecting strings.
"""

from __future__ import annotations


class PostelError(Exception):
    """Root of every error postel raises on purpose."""


class ProtocolError(PostelError):
    """Input that violates a protocol grammar or state table.

    Protocol cores (smtp, imap, pop3, mail) raise only subclasses of this for bad input.
    """


class LocalProtocolError(ProtocolError):
    """The local side tried to do something the protocol state does not allow."""


class TemporaryFailure(PostelError):
    """A failure that may succeed later (4xx in SMTP). Spec: RFC 5321 §4.2.1."""


class PermanentFailure(PostelError):
    """A failure that will not succeed if retried unchanged (5xx). Spec: RFC 5321 §4.2.1."""


class ConfigError(PostelError):
    """A configuration problem, located by file and line when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{message}")


class StoreError(PostelError):
    """The store could not do what was asked (a temporary condition unless subclassed)."""


class NotFound(StoreError):
    """The named domain, account, alias, mailbox or message does not exist."""


class BlobMissing(NotFound):
    """A stored message's bytes are gone: its blob file was removed behind the store's
    back (the message itself still exists). Spec: RELIABILITY.md D2 (recovery reports
    it at the next start)."""


class StoreBusy(StoreError):
    """The database stayed locked by another writer for longer than the busy timeout
    (SQLite; e.g. a long admin transaction): a temporary condition, retried later."""


class AlreadyExists(StoreError):
    """The named domain, account, alias or mailbox already exists."""


class MtaStsError(ProtocolError):
    """An MTA-STS TXT record or policy file that does not parse, or a policy that
    cannot be fetched as RFC 8461 §3.3 demands. Spec: RFC 8461 §3."""
