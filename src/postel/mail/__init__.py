"""RFC 5322 / MIME values: header fields, addresses, the MIME tree with byte offsets,
ENVELOPE/BODYSTRUCTURE summaries and their IMAP rendering, trace fields and dates.

Sans-IO: nothing here reads clocks, files or sockets.
"""

from postel.mail.address import ADDRESSES_MAX, Address, parse_address_list
from postel.mail.date import parse_date
from postel.mail.envelope import Envelope, envelope_from_header
from postel.mail.header import (
    HeaderBlock,
    HeaderField,
    decode_encoded_words,
    find_header_end,
    split_header,
    unfold,
)
from postel.mail.imapfmt import imap_nstring, render_body, render_bodystructure, render_envelope
from postel.mail.mime import BodyPart, EnclosedMessage, parse_mime
from postel.mail.params import ContentType, Param, parse_content_type
from postel.mail.summary import (
    MessageSummary,
    SectionText,
    find_part,
    parse_message,
    section_range,
)
from postel.mail.trace import (
    TraceInfo,
    delivered_to_field,
    format_date,
    received_field,
    return_path_field,
    trace_info,
)

__all__ = [
    "ADDRESSES_MAX",
    "Address",
    "BodyPart",
    "ContentType",
    "EnclosedMessage",
    "Envelope",
    "HeaderBlock",
    "HeaderField",
    "MessageSummary",
    "Param",
    "SectionText",
    "TraceInfo",
    "decode_encoded_words",
    "delivered_to_field",
    "envelope_from_header",
    "find_header_end",
    "find_part",
    "format_date",
    "imap_nstring",
    "parse_address_list",
    "parse_content_type",
    "parse_date",
    "parse_message",
    "parse_mime",
    "received_field",
    "render_body",
    "render_bodystructure",
    "render_envelope",
    "return_path_field",
    "section_range",
    "split_header",
    "trace_info",
    "unfold",
]
