"""Authentication-Results writing and removal. Spec: RFC 8601 §2.2, §5."""

from __future__ import annotations

import email
from email import policy

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail import authres
from postel.mail.authres import AUTHRES_LINE_TARGET, MethodResult, render, strip_ours

RESULTS = [
    MethodResult("spf", "pass", properties=(("smtp.mailfrom", "alice@a.example"),)),
    MethodResult(
        "dkim",
        "pass",
        properties=(("header.d", "a.example"), ("header.s", "sel1"), ("header.b", "AbCd1234")),
    ),
    MethodResult("dmarc", "pass", properties=(("header.from", "a.example"),)),
    MethodResult(
        "iprev", "fail", reason="no PTR; 127.0.0.2", properties=(("policy.iprev", "127.0.0.2"),)
    ),
]


def test_render_parses_back_with_pythons_email() -> None:
    field = render("mx.b.example", RESULTS)
    assert field.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    message = email.message_from_bytes(field + b"\r\nbody\r\n", policy=policy.default)
    value = " ".join(str(message["Authentication-Results"]).split())
    assert value.startswith("mx.b.example; spf=pass smtp.mailfrom=alice@a.example; dkim=pass")
    assert 'iprev=fail reason="no PTR; 127.0.0.2" policy.iprev=127.0.0.2' in value
    assert render("mx.b.example", []) == b"Authentication-Results: mx.b.example;\r\n\tnone\r\n"


def test_quoted_values_are_never_folded_inside() -> None:
    long_reason = "word " * 40
    field = render("mx", [MethodResult("dkim", "fail", reason=long_reason)])
    quoted = field[field.index(b'"') : field.rindex(b'"') + 1]
    assert b"\r\n" not in quoted
    assert quoted == b'"' + long_reason.encode() + b'"'


def test_control_characters_never_reach_the_field() -> None:
    field = render("mx", [MethodResult("spf", "fail", reason="x\r\nInjected: yes\x00")])
    assert field.count(b"\r\n") == field.count(b"\r\n\t") + 1
    assert b"\x00" not in field and b"Injected: yes" in field  # kept inside the quotes


def test_strip_removes_only_fields_claiming_our_id() -> None:
    header = (
        b"Received: from x\r\n"
        b"Authentication-Results: MX.B.example; spf=pass\r\n"
        b"Subject: hi\r\n"
        b"authentication-results: (forged) mx.b.example;\r\n\tdkim=pass header.d=bank.example\r\n"
        b"Authentication-Results: mx.other.example; spf=fail\r\n"
        b"Authentication-Results: mx.b.example.evil; spf=pass"
    )
    stripped, removed = strip_ours(header, "mx.b.example")
    assert removed == 2
    assert stripped == (
        b"Received: from x\r\n"
        b"Subject: hi\r\n"
        b"Authentication-Results: mx.other.example; spf=fail\r\n"
        b"Authentication-Results: mx.b.example.evil; spf=pass"
    )
    assert strip_ours(b"Subject: x", "mx") == (b"Subject: x", 0)


@given(st.binary(max_size=400))
def test_strip_never_fails_and_keeps_other_bytes(header: bytes) -> None:
    stripped, removed = strip_ours(header, "mx.b.example")
    assert removed >= 0 and len(stripped) <= len(header)


_TEXT = st.text(alphabet=st.sampled_from([*'abz09.@-_ "\\;=()', "é"]), min_size=0, max_size=90)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            MethodResult,
            st.sampled_from(["spf", "dkim", "dmarc", "arc", "iprev"]),
            st.sampled_from(["pass", "fail", "none", "temperror"]),
            st.one_of(st.none(), _TEXT),
            st.lists(
                st.tuples(st.sampled_from(["header.d", "smtp.mailfrom"]), _TEXT), max_size=4
            ).map(tuple),
        ),
        max_size=6,
    )
)
def test_folding_keeps_every_word_and_the_line_width(results: list[MethodResult]) -> None:
    """Unfolded, each method's line is its clause; a line is over the target width
    only when it is one word. Spec: RFC 5322 §2.2.3; RFC 8601 §2.2."""
    field = render("mx.example", results).decode()
    lines = field.removesuffix("\r\n").split("\r\n")
    for line in lines:
        assert len(line) <= AUTHRES_LINE_TARGET or len(authres._WORD.findall(line.strip())) == 1
    unfolded = field.replace("\r\n\t  ", " ").removesuffix("\r\n").split("\r\n\t")
    clauses = [authres._clause(r) for r in results] or ["none"]
    assert unfolded[1:] == [c + ";" for c in clauses[:-1]] + clauses[-1:]
