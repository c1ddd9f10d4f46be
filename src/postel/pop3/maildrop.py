"""The maildrop listing a POP3 session works on: message sizes and unique-ids fixed at
login, and the deletion marks of the session.

Messages are numbered from 1 in listing order; numbers never change during the session,
and a deleted message keeps its number but is no longer listed.

Spec: RFC 1939 §3 (message numbers), §5 (STAT, LIST, DELE, RSET), §7 (UIDL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from postel.errors import LocalProtocolError
from postel.pop3 import limits

__all__ = ["Maildrop"]

_UNIQUE_ID = re.compile(rf"[\x21-\x7e]{{1,{limits.UNIQUE_ID_MAX}}}")


class Maildrop:
    """Sizes (octets, as ``pop3_size`` counts them) and unique-ids, one per message.

    Raises LocalProtocolError when the sequences differ in length, a size is negative,
    or a unique-id is not 1 to 70 characters in 0x21..0x7E or is repeated.
    Spec: RFC 1939 §5, §7 (UIDL).
    """

    __slots__ = ("_deleted", "_sizes", "_uids")

    def __init__(self, sizes: Sequence[int], uids: Sequence[str]) -> None:
        if len(sizes) != len(uids):
            raise LocalProtocolError("sizes and uids differ in length")
        if any(size < 0 for size in sizes):
            raise LocalProtocolError("message size must not be negative")
        if any(_UNIQUE_ID.fullmatch(uid) is None for uid in uids):
            raise LocalProtocolError("bad unique-id (1-70 characters 0x21-0x7E)")
        if len(set(uids)) != len(uids):
            raise LocalProtocolError("unique-ids must be unique in a maildrop")
        self._sizes = tuple(sizes)
        self._uids = tuple(uids)
        self._deleted: set[int] = set()

    def exists(self, msg: int) -> bool:
        """True for a message number in 1..count that is not marked deleted."""
        return 1 <= msg <= len(self._sizes) and msg not in self._deleted

    def is_deleted(self, msg: int) -> bool:
        """True for a message number marked deleted in this session."""
        return msg in self._deleted

    def size(self, msg: int) -> int:
        """Octets of message ``msg`` (1-based)."""
        return self._sizes[msg - 1]

    def uid(self, msg: int) -> str:
        """Unique-id of message ``msg`` (1-based)."""
        return self._uids[msg - 1]

    def stat(self) -> tuple[int, int]:
        """(messages, octets) not marked deleted. Spec: RFC 1939 §5 (STAT)."""
        count = total = 0
        for _msg, size in self.listing():
            count += 1
            total += size
        return count, total

    def listing(self) -> Iterator[tuple[int, int]]:
        """(msg, size) of each message not marked deleted, in order."""
        for index, size in enumerate(self._sizes, start=1):
            if index not in self._deleted:
                yield index, size

    def delete(self, msg: int) -> bool:
        """Mark ``msg`` deleted; False if it does not exist or is already marked.
        Spec: RFC 1939 §5 (DELE)."""
        if not self.exists(msg):
            return False
        self._deleted.add(msg)
        return True

    def reset(self) -> None:
        """Unmark every message. Spec: RFC 1939 §5 (RSET)."""
        self._deleted.clear()

    def deleted(self) -> tuple[int, ...]:
        """Numbers of the messages marked deleted, ascending. Spec: RFC 1939 §6."""
        return tuple(sorted(self._deleted))
