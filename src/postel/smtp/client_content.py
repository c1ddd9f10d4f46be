"""Encoding what the SMTP client sends: DATA content (line ends, dot-stuffing, the end
marker), xtext, and MAIL/RCPT parameters.

Spec: RFC 5321 §4.5.2, §2.3.8, §4.1.1.4; RFC 3461 §4 (xtext); RFC 1870; RFC 6152;
RFC 3030 §3; RFC 6531 §3.4; RFC 8689 §4.
"""

from __future__ import annotations

from postel.errors import LocalProtocolError
from postel.smtp.client_events import Extensions
from postel.smtp.params import Body, MailParams, Notify, RcptParams, encode_utf8_addr

_END_MARKER = b".\r\n"
_NOTIFY_ORDER = (Notify.NEVER, Notify.SUCCESS, Notify.FAILURE, Notify.DELAY)


class DotStuffer:
    """Incremental encoder of DATA content.

    * Every bare CR and bare LF becomes CRLF: RFC 5321 §2.3.8 forbids sending them, and a
      receiver that reads ``<LF>.<LF>`` as the end of data would see a different message
      (the smuggling class, CVE-2023-51764).
    * A line that begins with ``.`` gets one more ``.`` (RFC 5321 §4.5.2).
    * ``end()`` adds CRLF when the content does not end with one, then ``.CRLF``.

    ``feed`` holds back at most one octet (a trailing CR whose LF may follow).
    Spec: RFC 5321 §4.5.2, §2.3.8, §4.1.1.4.
    """

    __slots__ = ("_carry", "_line_start")

    def __init__(self) -> None:
        self._carry = b""
        self._line_start = True

    def feed(self, chunk: bytes) -> bytes:
        """Encode ``chunk``; return the octets to send now."""
        data = self._carry + chunk
        self._carry = b""
        if data.endswith(b"\r"):
            data, self._carry = data[:-1], b"\r"
        return self._encode(data)

    def end(self) -> bytes:
        """The rest of the content, a CRLF if it lacks one, and the end marker."""
        tail = self._encode(b"\r\n" if self._carry else b"")
        self._carry = b""
        if not self._line_start:
            tail += b"\r\n"
            self._line_start = True
        return tail + _END_MARKER

    def _encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        if b"\r" in data or b"\n" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        data = data.replace(b"\r\n.", b"\r\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data


def stuff_message(content: bytes) -> bytes:
    """The whole DATA content as sent: normalised, dot-stuffed, ending ``CRLF.CRLF``.
    Spec: RFC 5321 §4.5.2, §4.1.1.4."""
    stuffer = DotStuffer()
    return stuffer.feed(content) + stuffer.end()


def encode_xtext(text: str) -> str:
    """Encode as xtext: ``+``, ``=``, controls, space and non-ASCII become ``+XX``
    (UTF-8 octets). Spec: RFC 3461 §4."""
    out: list[str] = []
    for octet in text.encode("utf-8"):
        if 0x21 <= octet <= 0x7E and octet not in (0x2B, 0x3D):
            out.append(chr(octet))
        else:
            out.append(f"+{octet:02X}")
    return "".join(out)


def mail_parameters(params: MailParams, *, requiretls: bool = False) -> list[str]:
    """The esmtp-params of MAIL FROM, in a fixed order (which extension each needs is
    checked by the connection). Spec: RFC 1870 §3, RFC 6152 §2, RFC 3030 §3,
    RFC 6531 §3.4, RFC 3461 §4.3-4.4, RFC 8689 §4."""
    words: list[str] = []
    if params.size is not None:
        words.append(f"SIZE={params.size}")
    if params.body is not None:
        words.append(f"BODY={params.body.value}")
    if params.smtputf8:
        words.append("SMTPUTF8")
    if params.ret is not None:
        words.append(f"RET={params.ret.value}")
    if params.envid is not None:
        words.append(f"ENVID={encode_xtext(params.envid)}")
    if requiretls:
        words.append("REQUIRETLS")
    return words


def rcpt_parameters(params: RcptParams) -> list[str]:
    """The esmtp-params of RCPT TO. Spec: RFC 3461 §4.1-4.2."""
    words: list[str] = []
    if params.notify is not None:
        names = [item.value for item in _NOTIFY_ORDER if item in params.notify]
        words.append(f"NOTIFY={','.join(names)}")
    if params.orcpt is not None:
        orcpt = params.orcpt
        encode = encode_utf8_addr if orcpt.addr_type.upper() == "UTF-8" else encode_xtext
        words.append(f"ORCPT={orcpt.addr_type};{encode(orcpt.address)}")
    return words


def check_mail_params(ext: Extensions, params: MailParams, *, requiretls: bool, tls: bool) -> None:
    """Raise LocalProtocolError for MAIL parameters the server did not offer. Spec: RFC 5321 §4.1.1.2 (a client
    must not use an extension the server has not announced), RFC 8689 §4."""
    missing: list[str] = []
    if params.size is not None and not ext.size:
        missing.append("SIZE")
    if params.body is Body.EIGHT_BIT_MIME and not ext.eight_bit_mime:
        missing.append("8BITMIME")
    if params.body is Body.BINARY_MIME and not (ext.binary_mime and ext.chunking):
        missing.append("BINARYMIME")
    if params.smtputf8 and not ext.smtputf8:
        missing.append("SMTPUTF8")
    if (params.ret is not None or params.envid is not None) and not ext.dsn:
        missing.append("DSN")
    if requiretls and not (ext.requiretls and tls):
        missing.append("REQUIRETLS (needs TLS)")
    if missing:
        raise LocalProtocolError(f"not offered by the server: {', '.join(missing)}")
