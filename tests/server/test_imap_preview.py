"""The PREVIEW text of real messages: first text part, decoded, HTML reduced, white
space collapsed, 256 characters at most. Spec: RFC 8970 §3.1, §4."""

from __future__ import annotations

import base64

from postel.mail.mime import parse_mime
from postel.server.imap_preview import PREVIEW_CHARS_MAX, first_text_part, preview


def _preview(data: bytes) -> str:
    root = parse_mime(data)
    part = first_text_part(root)
    if part is None:
        return ""
    return preview(data[part.body_offset : part.body_offset + part.body_length], part)


def test_plain_quoted_printable_latin1() -> None:
    data = (
        b"Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Caf=E9   au\r\n\r\n\tlait=\r\n!\r\n"
    )
    assert _preview(data) == "Café au lait!"


def test_multipart_skips_attachment_and_reduces_html() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnot me\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"
        b"\r\n\r\n"
        + base64.encodebytes(
            "<html><head><title>T</title><style>p {color: red}</style></head>"
            "<body><p>Hello &amp; <b>wörld</b></p>\n<p>again</p></body></html>".encode()
        ).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    assert _preview(data) == "Hello & wörld again"


def test_long_text_is_cut_and_no_text_part_is_empty() -> None:
    body = b"word " * 200
    assert len(_preview(b"Subject: x\r\n\r\n" + body)) == PREVIEW_CHARS_MAX
    assert _preview(b"Content-Type: image/gif\r\n\r\nGIF89a\r\n") == ""
