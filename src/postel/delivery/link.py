"""The byte pipe under one outbound SMTP session: an asyncio Protocol with a read
buffer the session controls, so plaintext read ahead of a STARTTLS handshake can be
thrown away (RELIABILITY.md D4, test 4: response injection).

Bound defined here: ``LINK_BUFFER_MAX`` (local policy).

Spec: RFC 3207 §4.2, §5 (discard what was read before TLS).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from postel.errors import ConfigError

LINK_BUFFER_MAX = 256 * 1024
"""Octets read from the server and not yet consumed before reading pauses (local
policy; the client core bounds a reply far below this)."""


class Link(asyncio.Protocol):
    """One TCP (later TLS) connection: ``read`` returns what arrived (``b""`` at EOF),
    ``write`` waits while the transport's buffer is full, ``discard`` drops unread
    input, ``start_tls`` upgrades in place. Spec: RFC 3207 §4.2."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    # -- protocol callbacks --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._readable.set()
        if len(self._buffer) > LINK_BUFFER_MAX and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._readable.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- driver side --
    async def read(self) -> bytes:
        """Everything received so far, waiting for at least one octet; ``b""`` at EOF."""
        while not self._buffer and not self._eof:
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return data

    def read_nowait(self) -> bytes | None:
        """``read`` without waiting: None when nothing arrived yet (and no EOF)."""
        if not self._buffer and not self._eof:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data``; waits while the peer does not read. ConnectionError once the
        connection is gone."""
        if not self.send(data):
            await self.drain()

    def send(self, data: bytes) -> bool:
        """Hand ``data`` to the transport; False when the caller must ``drain`` before
        writing more (the peer does not read). ConnectionError once the connection is
        gone."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        if self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        return self._writable.is_set()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark.
        ConnectionError once the connection is gone."""
        await self._writable.wait()
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")

    def discard(self) -> None:
        """Drop input not yet read (plaintext before a TLS handshake)."""
        self._buffer.clear()

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> None:
        """Discard unread plaintext, then run the TLS handshake on this connection.
        Raises ssl.SSLError, OSError or TimeoutError. Spec: RFC 3207 §4.2, §5."""
        assert self.transport is not None
        self.discard()
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            self.transport,
            self,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=timeout,
        )
        if transport is None:
            raise ConnectionResetError("connection closed during the TLS handshake")
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.discard()

    @property
    def tls_version(self) -> str | None:
        """The TLS protocol version in use, or None in plaintext."""
        if self.transport is None:
            return None
        obj = self.transport.get_extra_info("ssl_object")
        return obj.version() if isinstance(obj, ssl.SSLObject) else None

    def close(self) -> None:
        """Close the connection at once (no QUIT)."""
        if self.transport is not None:
            self.transport.close()


def client_tls_context(*, verify: bool, ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context: with ``verify`` the system CAs plus the PEM anchors of
    ``ca_file`` and host name checking; without, encryption only (opportunistic TLS).
    TLS 1.2 or later either way. Raises ConfigError when ``ca_file`` cannot be loaded.
    Spec: RFC 7435 §1.3; RFC 8461 §4.2; RFC 8996 (no TLS 1.0/1.1)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load trust anchors from {ca_file}: {exc}") from None
    return context
