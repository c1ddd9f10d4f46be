"""Listening sockets: a port someone listens on is refused with one line naming the
config key, also when the other listener is a group of SO_REUSEPORT sockets (another
postel with ``[smtp] processes`` above 1), which the kernel would otherwise let us join.

Spec: RELIABILITY.md D3 (a clear line, not a traceback); docs/adr/0005.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from ports import free_port
from postel.config import Listen, Service
from postel.errors import ConfigError
from postel.server.listener import bind_group, bind_socket

Holder = Callable[[int], list[socket.socket]]


def _plain(port: int) -> list[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return [sock]


def _reuseport_group(port: int) -> list[socket.socket]:
    socks = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        socks.append(sock)
    return socks


def _postel_group(port: int) -> list[socket.socket]:
    return bind_group(Listen(Service.SMTP, "127.0.0.1", port), 2)


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


@pytest.mark.parametrize("holder", [_plain, _reuseport_group, _postel_group])
@pytest.mark.parametrize("binder", ["single", "group"])
def test_a_port_in_use_is_refused_with_the_config_key(
    port: int, holder: Holder, binder: str
) -> None:
    held = holder(port)
    listen = Listen(Service.SMTP, "127.0.0.1", port)
    try:
        with pytest.raises(ConfigError) as raised:
            if binder == "single":
                bind_socket(listen)
            else:
                bind_group(listen, 3)
        assert "the port is already in use" in raised.value.message
        assert "listen.smtp" in raised.value.message
    finally:
        for sock in held:
            sock.close()


def test_a_group_is_count_sockets_on_one_port_and_all_of_them_accept(port: int) -> None:
    group = bind_group(Listen(Service.SMTP, "127.0.0.1", port), 3)
    try:
        assert len(group) == 3
        assert {sock.getsockname()[1] for sock in group} == {port}
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(60)]
        accepted = 0
        for sock in group:
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
        assert accepted == len(clients)
        for client in clients:
            client.close()
    finally:
        for sock in group:
            sock.close()


def test_a_port_is_free_again_once_the_group_is_closed(port: int) -> None:
    for sock in bind_group(Listen(Service.SMTP, "127.0.0.1", port), 2):
        sock.close()
    bind_socket(Listen(Service.SMTP, "127.0.0.1", port)).close()
