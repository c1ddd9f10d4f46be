"""Every bound on input, named and cited. Config may override the defaults.

Each constant says where its value comes from. Values are in octets unless the name
says otherwise.
"""

from __future__ import annotations

# --- SMTP (RFC 5321 §4.5.3.1 and the extensions that widen it) ---------------------
SMTP_COMMAND_LINE_MAX = 512
"""Command line including CRLF. Spec: RFC 5321 §4.5.3.1.4."""
SMTP_SIZE_PARAM_ALLOWANCE = 26
"""Extra octets a MAIL command may use for ` SIZE=<n>`. Spec: RFC 1870 §3."""
SMTP_DSN_MAIL_ALLOWANCE = 112
"""Extra octets for ` RET=` and ` ENVID=` on MAIL. Spec: RFC 3461 §4 (100 + keywords)."""
SMTP_DSN_RCPT_ALLOWANCE = 520
"""Extra octets for ` NOTIFY=` and ` ORCPT=` on RCPT. Spec: RFC 3461 §4 (500 + keywords)."""
SMTP_UTF8_ALLOWANCE = 10
"""Extra octets for ` SMTPUTF8`. Spec: RFC 6531 §3.4."""
SMTP_COMMAND_LINE_HARD_MAX = 4096
"""Hard cut: a longer line is answered 500 5.5.2 and discarded up to its CRLF.
Well above 512 + all allowances. Spec: RFC 5321 §4.5.3.1.4 (servers may accept more)."""
SMTP_REPLY_LINE_MAX = 512
"""Reply line including CRLF. Spec: RFC 5321 §4.5.3.1.5."""
SMTP_TEXT_LINE_MAX = 1000
"""Text line including CRLF; enforced only in strict mode. Spec: RFC 5321 §4.5.3.1.6."""
SMTP_RECIPIENTS_MAX = 1000
"""Recipients per message; the RFC's floor is 100. Spec: RFC 5321 §4.5.3.1.8."""
SMTP_MESSAGE_SIZE_MAX = 50 * 1024 * 1024
"""Message size announced in EHLO SIZE. Spec: RFC 1870 §4 (RELIABILITY.md D3)."""
SMTP_ERRORS_MAX = 10
"""Bad commands per session before 421 and close. Spec: RFC 5321 §4.5.3.2 (local policy)."""
SMTP_RECEIVED_MAX = 50
"""More Received: fields than this is a loop: 554 5.4.6. Spec: RFC 5321 §6.3."""
SMTP_HEADER_BLOCK_MAX = 1024 * 1024
"""Header block size scanned for trace fields and MIME (RELIABILITY.md D3)."""
SMTP_TRACE_SCAN_MAX = 256 * 1024
"""Start of the content kept to count Received and Delivered-To fields (loop check).
Fifty Received fields take about 15 KB. Spec: RFC 5321 §6.3."""

# --- SMTP timeouts, seconds (RFC 5321 §4.5.3.2) ------------------------------------
SMTP_TIMEOUT_COMMAND = 300.0
"""Server timeout waiting for the next command. Spec: RFC 5321 §4.5.3.2.7."""
SMTP_TIMEOUT_DATA_BLOCK = 180.0
"""Client-side DATA block timeout, used as the wait for each chunk. Spec: RFC 5321 §4.5.3.2.5."""
SMTP_TIMEOUT_DATA_TOTAL = 1200.0
"""Whole message content (DATA or every BDAT chunk) from 354 / the first chunk to its
end: a client trickling bytes is cut here (local policy; 50 MB at about 42 KB/s)."""
SMTP_TIMEOUT_TLS_HANDSHAKE = 30.0
"""TLS handshake after STARTTLS or on an implicit-TLS port (local policy)."""
SMTP_TIMEOUT_SEND = 60.0
"""Writing a reply to a client that does not read (local policy)."""

# --- MIME (RELIABILITY.md D3) ------------------------------------------------------
MIME_DEPTH_MAX = 100
"""Nesting depth of multipart/message parts parsed for structure."""
MIME_PARTS_MAX = 10_000
"""Number of MIME parts parsed for structure."""
MIME_HEADER_FIELDS_MAX = 10_000
"""Header fields parsed per part."""
MIME_SUMMARY_MAX = 1024 * 1024
"""Octets of a message's MIME structure summary (the ENVELOPE and BODYSTRUCTURE data
parsed at delivery and stored with every copy of the message): a message whose summary
is larger is refused with 552 5.3.4, so that one message cannot make each of its
recipients' rows megabytes long (thousands of parts with kilobytes of header text
each). Real mail stays far below it (a 1,000-part message: about 300 KB). Local
policy; RFC 3463 §3.4 (X.3.4: too big for the system)."""

# --- Directory ---------------------------------------------------------------------
ALIAS_EXPANSION_DEPTH_MAX = 10
"""Alias-to-alias hops followed before giving up (loop guard, local policy)."""
ALIAS_EXPANSION_TARGETS_MAX = 1000
"""Addresses one alias may expand to (equal to the recipient limit)."""

# --- Store -------------------------------------------------------------------------
BLOB_INLINE_MAX = 128 * 1024
"""Messages up to this size are kept inside the database transaction (docs/adr/0002)."""
BLOB_SPILL_THRESHOLD = 1024 * 1024
"""An incoming message larger than this is spooled to a file while it arrives."""
GROUP_COMMIT_MAX_BATCH = 256
"""Deliveries committed together in one transaction at most."""

# -- IMAP ------------------------------------------------------------------------------

IMAP_APPEND_LIMIT = 50 * 1024 * 1024
"""Largest message APPEND accepts, announced as APPENDLIMIT (the SMTP size limit's
default, so any message postel accepts by SMTP can be appended). Spec: RFC 7889 §3."""
IMAP_TIMEOUT_AUTHENTICATED = 30 * 60.0
"""Inactivity timeout of an authenticated session: at least 30 minutes.
Spec: RFC 9051 §5.4 (autologout timer)."""
IMAP_TIMEOUT_NOT_AUTHENTICATED = 60.0
"""Inactivity timeout before login (RFC 9051 §5.4 allows a shorter one before
authentication; RELIABILITY.md D4)."""
IMAP_TIMEOUT_IDLE = 30 * 60.0
"""IDLE longer than this ends the session (clients re-issue IDLE at least every 29
minutes). Spec: RFC 2177 §3, RFC 9051 §6.3.13."""
IMAP_TIMEOUT_SEND = 60.0
"""A client that does not read our responses for this long is disconnected."""
IMAP_SEARCH_TEXT_MAX = 4 * 1024 * 1024 * 1024
"""Octets of message text one SEARCH, SORT or THREAD command may read for its text keys:
each BODY or TEXT key scans a message's decoded text once (a message of N octets costs
N per key), each HEADER, FROM, TO, CC, BCC or SUBJECT key its header section. A command
that would read more is refused with NO [LIMIT] before its keys scan the message past
the bound; the re-searches of updating searches (RETURN (UPDATE)) at one sync point
share one such allowance. 4 GiB lets one or two text keys scan a mailbox of a few GB
that the full-text index does not answer for; it stops a search of hundreds of OR'd
keys over large messages or headers, which would otherwise cost minutes of CPU.
Configurable as ``[imap] search_text_max``.
Spec: RFC 5530 §3 (LIMIT); RELIABILITY.md D7 (bounded work per command)."""
IMAP_FETCH_BATCH = 256
"""Messages loaded from the store per round trip while answering FETCH or SEARCH."""
IMAP_CHANGE_RECHECK = 30.0
"""Seconds between store re-checks of an IDLE session even without a notification
(a notification from another process may be lost; local ones are immediate)."""

# -- POP3 ------------------------------------------------------------------------------

POP3_TIMEOUT_AUTHENTICATED = 600.0
"""Inactivity timeout after login: at least 10 minutes. Spec: RFC 1939 §3 (autologout)."""
POP3_TIMEOUT_NOT_AUTHENTICATED = 60.0
"""Inactivity timeout before login (RELIABILITY.md D4)."""
POP3_TIMEOUT_SEND = 60.0
"""A client that does not read our responses for this long is disconnected."""
