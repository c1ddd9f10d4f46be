"""Bounds on POP3 client input, named and cited. Values are in octets unless the name
says otherwise; ``Pop3Config`` may lower or raise the policy ones.

Spec: RFC 2449 §4 (command and response line lengths), RFC 5034 §4 (AUTH responses),
RFC 1939 §7 (unique-id), RELIABILITY.md D3, D7.
"""

from __future__ import annotations

from postel.sasl import SASL_LINE_MAX

__all__ = [
    "AUTH_LINE_MAX",
    "COMMAND_LINE_MAX",
    "ERRORS_MAX",
    "MSG_NUMBER_DIGITS_MAX",
    "RESPONSE_LINE_MAX",
    "TOP_LINES_DIGITS_MAX",
    "UNIQUE_ID_MAX",
]

COMMAND_LINE_MAX = 255
"""Longest command line, CRLF included. Spec: RFC 2449 §4 ("Commands ... MUST NOT
exceed 255 octets, including the terminating CRLF"). The 40-character bound on each
argument in the same section is not enforced: it would refuse long account names and
generated passwords, and the line bound already caps the memory."""

AUTH_LINE_MAX = SASL_LINE_MAX + 2
"""Longest client line during an AUTH exchange, CRLF included: a base64 response is not
a command and may be longer than 255 octets (SCRAM with channel data, long PLAIN
credentials). Spec: RFC 5034 §4, RFC 4954 §4 (12288 is sufficient)."""

RESPONSE_LINE_MAX = 512
"""Longest status line we send, CRLF included (text is cut to fit).
Spec: RFC 2449 §4 ("Responses ... MUST NOT exceed 512 octets")."""

ERRORS_MAX = 10
"""Protocol errors (unknown commands, bad syntax, wrong state, over-long lines)
tolerated in one session; the next one ends it with ``-ERR``. Local policy, as
RFC 5321 §4.5.3.2 allows for SMTP; RELIABILITY.md D7."""

MSG_NUMBER_DIGITS_MAX = 10
"""Digits accepted in a message-number argument (a 32-bit count needs 10).
Spec: RFC 1939 §3 (msg arguments), §5."""

TOP_LINES_DIGITS_MAX = 20
"""Digits accepted in the line count of TOP; larger counts than the body just send the
whole body. Spec: RFC 1939 §7 (TOP msg n, n non-negative)."""

UNIQUE_ID_MAX = 70
"""Longest unique-id listed by UIDL: 1 to 70 characters in 0x21..0x7E.
Spec: RFC 1939 §7 (UIDL)."""
