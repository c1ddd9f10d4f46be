"""Bounds on IMAP client input, named and cited. The connection's config may lower or
raise them; these are the defaults. Values are in octets unless the name says otherwise.

Spec: RFC 9051 §4 (no line length limit in the protocol; servers set their own),
RFC 7162 §4 (lines of at least 8192 octets must be accepted), RELIABILITY.md D3, D7.
"""

from __future__ import annotations

__all__ = [
    "APPEND_CHUNK_MAX",
    "APPEND_LIMIT",
    "ID_FIELD_MAX",
    "ID_PAIRS_MAX",
    "ID_VALUE_MAX",
    "LINE_MAX",
    "LINE_MAX_PREAUTH",
    "LITERALS_MAX",
    "LITERALS_TOTAL_MAX",
    "LITERAL_MAX",
    "LITERAL_MINUS_MAX",
    "LITERAL_SIZE_MAX",
    "PAREN_DEPTH_MAX",
    "SEARCH_KEYS_MAX",
]

LINE_MAX_PREAUTH = 8 * 1024
"""Octets of one command's line text (every line segment, literals excluded) before
authentication. Spec: RFC 7162 §4 (at least 8192), RELIABILITY.md D3."""
LINE_MAX = 64 * 1024
"""The same after authentication: long UID sets from CONDSTORE/QRESYNC clients need
room. Spec: RFC 7162 §4, RFC 9051 §4, RELIABILITY.md D3."""
LITERAL_MAX = 100 * 1024
"""One literal in any command but APPEND (mailbox names, passwords, search strings).
Spec: RELIABILITY.md D3 (local policy; RFC 9051 §4.3 sets no bound)."""
LITERALS_MAX = 64
"""Literals in one command other than APPEND message literals. Spec: RELIABILITY.md D7."""
LITERALS_TOTAL_MAX = 256 * 1024
"""Octets of all buffered literals of one command together. Spec: RELIABILITY.md D7."""
LITERAL_MINUS_MAX = 4096
"""Largest non-synchronizing literal when only LITERAL- is offered. Spec: RFC 7888 §5."""
LITERAL_SIZE_MAX = 4_294_967_295
"""Largest literal size the grammar can announce (``number``, 32-bit); larger
announcements are refused before any octet is read. Spec: RFC 9051 §9 (number)."""
APPEND_LIMIT = 50 * 1024 * 1024
"""Largest message APPEND accepts (APPENDLIMIT); equals the SMTP message size.
Spec: RFC 7889 §2, RELIABILITY.md D3."""
APPEND_CHUNK_MAX = 64 * 1024
"""Largest AppendData chunk handed to the driver at once. Spec: RELIABILITY.md D7."""
PAREN_DEPTH_MAX = 64
"""Nesting depth of parenthesised lists (SEARCH, FETCH, LIST options). Spec:
RELIABILITY.md D3 ("parenthesis depth 64")."""
SEARCH_KEYS_MAX = 1000
"""Search keys in one SEARCH command, counting nested ones. Spec: RELIABILITY.md D7."""
ID_PAIRS_MAX = 30
"""Field-value pairs in an ID command. Spec: RFC 2971 §3.3."""
ID_FIELD_MAX = 30
"""Octets of an ID field name. Spec: RFC 2971 §3.3."""
ID_VALUE_MAX = 1024
"""Octets of an ID value. Spec: RFC 2971 §3.3."""
