"""Cross-check the MIME tree with Python's email package on the corpus."""

from __future__ import annotations

import email
import email.message
import email.policy

import pytest

from postel.mail import BodyPart, parse_message

from .dovecot_compare import CORPUS, cases

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="conformance corpus not present")


def _ours(part: BodyPart) -> list[str]:
    out = [f"{part.type}/{part.subtype}"]
    for child in part.parts:
        out += _ours(child)
    if part.message is not None:
        out += _ours(part.message.body)
    return out


# Python's email parses these as lists of header blocks; they are leaves in MIME/IMAP.
_LEAF_MESSAGES = {"message/delivery-status", "message/external-body"}

# Known disagreements, each for a reason on Python's side.
_KNOWN = {
    # RFC 2231 extended boundary* parameter: Python decodes and uses it; postel, like
    # Dovecot, uses only a plain boundary parameter (RFC 2046 §5.1.1).
    "cpython-test-email/msg_33.txt",
    # Delimiters that are a prefix of another: postel matches the longest boundary
    # (RFC 2046 §5.1.1), Python the innermost.
    "mimetools-testmsgs/2002_06_12_doublebound.msg",
    "mimetools-testmsgs/double-bound.msg",
    # Consecutive delimiters: each encloses an empty part (RFC 2046 §5.1.1 body-part may
    # be empty; Dovecot agrees), Python drops them.
    "cpython-test-email/msg_37.txt",
}


def _walk(part: email.message.Message, out: list[str]) -> bool:
    out.append(part.get_content_type())
    defects = bool(part.defects)
    if part.get_content_type() in _LEAF_MESSAGES or not part.is_multipart():
        return defects
    payload = part.get_payload()
    assert isinstance(payload, list)
    for child in payload:
        assert isinstance(child, email.message.Message)
        defects = _walk(child, out) or defects
    return defects


def _theirs(data: bytes) -> tuple[list[str], bool]:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    types: list[str] = []
    defects = _walk(msg, types)
    return types, defects


def test_part_count_and_types_agree_on_well_formed_messages() -> None:
    checked = 0
    mismatches: list[str] = []
    for case in cases():
        theirs, defects = _theirs(case.message)
        if defects or case.file in _KNOWN:
            continue
        checked += 1
        ours = _ours(parse_message(case.message).body)
        if ours != theirs:
            mismatches.append(f"{case.file}: ours={ours} email={theirs}")
    assert checked > 150
    assert not mismatches, "\n".join(mismatches)
