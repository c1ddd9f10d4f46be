"""Base subject extraction and the i;unicode-casemap collation key, used by IMAP SORT
(SUBJECT) and THREAD (ORDEREDSUBJECT, REFERENCES).

The subject given here is already decoded text (RFC 2047 encoded-words turned into
Unicode by the caller, RFC 5256 §2.1 step 1 first half). Extraction works on start and
end indices over that text, so a hostile subject of any length (``[][][]...``,
``[fwd: [fwd: ...]]``, ``Re: Re: ...``) costs time linear in its length.

Spec: RFC 5256 §2.1 (base subject), §5 (ABNF of subj-*), RFC 5051 (i;unicode-casemap).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["BaseSubject", "base_subject", "casemap", "extract_base_subject", "is_reply_or_forward"]

# Step 1: tabs and continuations (CRLF WSP) become one space; runs of spaces become one.
_WHITESPACE = re.compile(r"[ \t\r\n]+")
# subj-blob = "[" *BLOBCHAR "]" *WSP  (BLOBCHAR: any character but "[" and "]").
_BLOB = re.compile(r"\[[^\[\]]*\][ \t]*")
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"  (ABNF strings ignore ASCII case).
_REFWD = re.compile(r"(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\][ \t]*)?:", re.IGNORECASE | re.ASCII)
_TRAILER_FWD = "(fwd)"  # subj-trailer = "(fwd)" / WSP
_FWD_HDR = "[fwd:"  # subj-fwd-hdr
_FWD_TRL = "]"  # subj-fwd-trl
_WSP = " \t"


@dataclass(frozen=True, slots=True)
class BaseSubject:
    """The base subject text and whether extraction removed a reply/forward marker.

    ``is_reply_or_forward`` is true when a subj-refwd leader ("Re:", "Fw:", "Fwd:"), a
    "(fwd)" subj-trailer or a "[fwd: ...]" wrapper was removed: the test the REFERENCES
    algorithm makes in step 5 ("is a reply or forward").

    Spec: RFC 5256 §2.1, §2.2 step 5.
    """

    text: str
    is_reply_or_forward: bool


def extract_base_subject(subject: str) -> BaseSubject:
    """Extract the base subject of an already decoded subject.

    Steps: (1) whitespace normalised; (2) trailing subj-trailer removed, repeatedly;
    (3) a leading subj-leader removed; (4) a leading subj-blob removed when text remains;
    (5) 3 and 4 repeated; (6) a ``[fwd: ... ]`` wrapper removed and back to step 2.
    Case is kept: comparisons go through `casemap`. Never raises; linear time.

    Spec: RFC 5256 §2.1.
    """
    text = _WHITESPACE.sub(" ", subject)
    start, end = 0, len(text)
    marked = False
    while True:
        end, trailer_marked = _strip_trailers(text, start, end)
        start, leader_marked = _strip_leaders(text, start, end)
        marked = marked or trailer_marked or leader_marked
        if (
            end - start >= len(_FWD_HDR) + len(_FWD_TRL)
            and _ascii_lower(text[start : start + len(_FWD_HDR)]) == _FWD_HDR
            and text[end - 1] == _FWD_TRL
        ):
            start += len(_FWD_HDR)
            end -= len(_FWD_TRL)
            marked = True
            continue
        return BaseSubject(text[start:end], marked)


def base_subject(subject: str) -> str:
    """The base subject text of an already decoded subject (see `extract_base_subject`).

    Spec: RFC 5256 §2.1.
    """
    return extract_base_subject(subject).text


def is_reply_or_forward(subject: str) -> bool:
    """Whether base subject extraction removes a reply or forward marker ("Re:",
    "Fwd:", "(fwd)", "[fwd: ...]"). Spec: RFC 5256 §2.1, §2.2 step 5.
    """
    return extract_base_subject(subject).is_reply_or_forward


def casemap(text: str) -> str:
    """The i;unicode-casemap collation key of ``text``: compare keys with ``<``/``==``.

    The text is put in compatibility decomposition (NFKD), then each character is
    replaced by its simple (one character) titlecase mapping, as UnicodeData gives it
    ("a" -> "A", "ǆ" -> "ǅ"; "ß" has none and stays). RFC 5051 titlecases first and
    decomposes second; decomposing first also folds ligatures and digraphs ("ﬁ" ->
    "FI", "ǆ" -> "DZ" + caron), which the other order leaves half lowercase. Python
    compares strings by code point, which is the octet order of their UTF-8 form that
    RFC 5051 asks for. ASCII text takes a fast path (``str.upper``). Never raises.

    Spec: RFC 5051 §2, RFC 5256 §1 (collation of SORT and THREAD).
    """
    if text.isascii():
        return text.upper()
    return "".join(_simple_titlecase(ch) for ch in unicodedata.normalize("NFKD", text))


def _simple_titlecase(ch: str) -> str:
    """The one-character titlecase mapping of ``ch`` (itself when there is none)."""
    titled = ch.title()
    if len(titled) == 1:
        return titled
    upper = ch.upper()
    return upper if len(upper) == 1 else ch


def _strip_trailers(text: str, start: int, end: int) -> tuple[int, bool]:
    """Step 2: drop trailing WSP and "(fwd)"; returns the new end and whether "(fwd)" went."""
    marked = False
    while end > start:
        if text[end - 1] in _WSP:
            end -= 1
        elif (
            end - start >= len(_TRAILER_FWD)
            and _ascii_lower(text[end - len(_TRAILER_FWD) : end]) == _TRAILER_FWD
        ):
            end -= len(_TRAILER_FWD)
            marked = True
        else:
            break
    return end, marked


def _strip_leaders(text: str, start: int, end: int) -> tuple[int, bool]:
    """Steps 3-5: drop leading WSP, ``*subj-blob subj-refwd`` and subj-blobs.

    A run of blobs is scanned once: if a subj-refwd follows it, step 3 removes the run
    and the subj-refwd together; otherwise step 4 removes the blobs one by one, keeping
    the last when nothing would remain after it (it is then the subj-base).
    """
    marked = False
    while start < end:
        if text[start] in _WSP:
            start += 1
            continue
        blobs_end, last_blob = start, start
        while (blob := _BLOB.match(text, blobs_end, end)) is not None:
            last_blob, blobs_end = blobs_end, blob.end()
        refwd = _REFWD.match(text, blobs_end, end)
        if refwd is not None:
            start, marked = refwd.end(), True
            continue
        if blobs_end == start:
            break
        start = blobs_end if blobs_end < end else last_blob
        if start == last_blob:
            break
    return start, marked


def _ascii_lower(text: str) -> str:
    """Lower ASCII letters only: ABNF literals ignore ASCII case, nothing else."""
    return text.lower() if text.isascii() else text
