"""COMPRESS=DEFLATE for IMAP sessions: raw deflate (no zlib header, ``wbits=-15``)
in both directions once ``tag OK`` has been sent, under TLS when TLS is active (TLS
carries the compressed stream). Each batch of output is flushed with Z_SYNC_FLUSH so
the client can act on every response at once.

Input is inflated in steps of at most ``INFLATE_STEP_MAX`` octets of output, and only
while the protocol core holds less than the session's read buffer bound: a small
input that inflates hugely (a decompression bomb) is inflated no faster than the core
consumes it, and reading from the socket pauses meanwhile. The core's line and
literal bounds then apply to the inflated stream as to plaintext.

The sans-IO core never sees compression: the session swaps the octets at the
transport boundary, as for TLS.

Spec: RFC 4978 §3 (COMPRESS, COMPRESSIONACTIVE), §4 (DEFLATE: RFC 1951, no zlib
header, Z_SYNC_FLUSH), §6 (security: compression after TLS); RFC 1951.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from postel.errors import ProtocolError
from postel.imap import responses as r
from postel.imap.parse_ext import Compress

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = [
    "COMPRESSIONACTIVE",
    "DEFLATE_LEVEL",
    "INFLATE_STEP_MAX",
    "CompressionError",
    "DeflateStream",
    "compress",
]

COMPRESSIONACTIVE = r.Code("COMPRESSIONACTIVE")
"""Compression is already on (COMPRESS or TLS). Spec: RFC 4978 §3."""

INFLATE_STEP_MAX = 64 * 1024
"""Octets of inflated input produced per step before the core's fill is checked again
(local bound against decompression bombs; RFC 4978 §6 leaves it to the server)."""
DEFLATE_LEVEL = 6
"""zlib compression level of the server's output (zlib's default trade-off)."""
_RAW_DEFLATE = -15
"""``wbits`` for raw deflate with a 32 KiB window. Spec: RFC 4978 §4, RFC 1951."""


class CompressionError(ProtocolError):
    """The client's deflate stream is corrupt. Spec: RFC 4978 §4."""


class DeflateStream:
    """Both directions of one compressed session: ``compress`` output batches and
    ``feed`` input, then take it in bounded ``inflate_step`` pieces."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
        self._inflate = zlib.decompressobj(_RAW_DEFLATE)
        self._backlog = b""

    def compress(self, data: bytes) -> bytes:
        """``data`` deflated and sync-flushed (complete on the wire). Spec: RFC 4978 §4."""
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def feed(self, data: bytes) -> None:
        """Queue compressed input from the socket (dropped after the stream's end)."""
        if not self._inflate.eof:
            self._backlog += data

    @property
    def backlog(self) -> int:
        """Compressed octets not yet inflated."""
        return len(self._backlog)

    def inflate_step(self) -> bytes:
        """Inflate queued input into at most ``INFLATE_STEP_MAX`` octets (b"" when the
        queued input holds no complete output yet). Raises CompressionError."""
        try:
            out = self._inflate.decompress(self._backlog, INFLATE_STEP_MAX)
        except zlib.error as exc:
            raise CompressionError("corrupt deflate stream") from exc
        self._backlog = self._inflate.unconsumed_tail
        if self._inflate.eof:
            self._backlog = b""  # the client finished its stream: nothing follows
        return out


async def compress(session: ImapSession, command: Compress) -> None:
    """COMPRESS DEFLATE: answer OK uncompressed, then compress both directions. Refused
    with NO [COMPRESSIONACTIVE] when compression is on already (a second COMPRESS, or
    TLS-level compression), NO for another algorithm, BAD when the client pipelined
    input after the command. Spec: RFC 4978 §3, §4."""
    if command.algorithm != "DEFLATE":
        await session.tagged(command.tag, r.Status.NO, "Unknown compression algorithm")
        return
    if session.compression is not None or _tls_compressed(session):
        await session.tagged(
            command.tag, r.Status.NO, "Compression already active", COMPRESSIONACTIVE
        )
        return
    if session.conn.buffered:
        await session.tagged(command.tag, r.Status.BAD, "Input pipelined after COMPRESS")
        return
    await session.tagged(command.tag, r.Status.OK, "DEFLATE active")
    session.compression = DeflateStream()


def _tls_compressed(session: ImapSession) -> bool:
    transport = session.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object is not None and ssl_object.compression() is not None
