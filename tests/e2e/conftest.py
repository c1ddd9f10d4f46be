"""Fixtures for the end-to-end tests: real `postel serve` processes.

- ``postel_factory`` (function): ``make(name, **options)`` builds a ``PostelServer`` in
  the test's temp dir; every server still running at the end is stopped.
- ``module_servers`` (module): the same for servers shared by one module's tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .server import PostelServer

ServerFactory = Callable[..., PostelServer]


def _factory(base: Path) -> tuple[ServerFactory, list[PostelServer]]:
    made: list[PostelServer] = []

    def make(name: str = "postel", **options: object) -> PostelServer:
        server = PostelServer(base / name, **options)  # type: ignore[arg-type]
        made.append(server)
        return server

    return make, made


def _stop_all(servers: list[PostelServer]) -> None:
    for server in servers:
        if server.running:
            server.stop()


@pytest.fixture
def postel_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    make, made = _factory(tmp_path)
    yield make
    _stop_all(made)


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    make, made = _factory(tmp_path_factory.mktemp("postel"))
    yield make
    _stop_all(made)
