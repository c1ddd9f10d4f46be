"""Which received messages are read for a DMARC aggregate report: the Subject starts
with "Report" 1*FWS "Domain:" after unfolding, in any case. Spec: RFC 9990 §2.5.2
(the dmarc-subject of RFC 7489 §7.2.1.1)."""

from __future__ import annotations

import pytest

from postel.pipeline.dmarc_observer import _looks_like_report


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"Report Domain: example.com Submitter: mx.example.org", True),
        (b"report domain:example.com", True),
        (b"REPORT DOMAIN: example.com", True),
        (b"Report\r\n Domain: example.com", True),
        (b"Report\r\n\tDomain:\r\n example.com", True),
        (b"  Report Domain: example.com", True),
        (b"Re: Report Domain: example.com", False),
        (b"Report Domain example.com", False),
        (b"Report  \t Domain: example.com", True),
        (b"Domain: Report", False),
        (b"hello", False),
    ],
)
def test_subject_decides(subject: bytes, expected: bool) -> None:
    message = b"From: a@example.com\r\nSubject: " + subject + b"\r\n\r\nReport Domain: body\r\n"
    assert _looks_like_report(message) is expected


def test_no_subject_and_words_only_in_the_body() -> None:
    assert not _looks_like_report(b"From: a@b\r\n\r\nReport Domain: x\r\n")
    assert not _looks_like_report(b"X-Report: domain: x\r\n\r\n")
