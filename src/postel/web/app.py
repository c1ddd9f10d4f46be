"""The ASGI application of postel's web listener.

Routes:

* ``GET /.well-known/mta-sts.txt``: our MTA-STS policy file, when the request's
  ``Host`` is ``mta-sts.<domain>`` for a domain postel serves; 404 otherwise.
* ``GET /healthz``: ``200 ok`` (load balancers, monitoring).

Spec: RFC 8461 §3.2 (policy file at the well-known URI), §3.3 (text/plain);
RFC 8615 (well-known URIs); RFC 9110 §7.2 (Host).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from postel.mtasts import OwnPolicy
from postel.store.api import Domain

MTA_STS_PREFIX = "mta-sts."
"""The label in front of a policy domain's name. Spec: RFC 8461 §3.2."""
HOST_HEADER_MAX = 255
"""Characters of a Host header considered (a domain name is at most 253, RFC 1035
§2.3.4, plus a port)."""

_PORT = re.compile(r"[0-9]{1,5}")
"""A port in Host: ASCII digits only (``str.isdigit`` takes other scripts' digits).
Spec: RFC 9110 §4.2.1 (port = *DIGIT), RFC 5234 §B.1 (DIGIT is 0-9)."""


class Domains(Protocol):
    """The domains postel serves (the store offers this). ``name`` is the lower-case
    A-label form."""

    async def get_domain(self, name: str) -> Domain | None: ...


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the web app serves: ``policy`` is our MTA-STS policy (``own_policy``)."""

    policy: OwnPolicy


def policy_domain(host_header: str) -> str | None:
    """The domain a ``Host: mta-sts.<domain>[:port]`` header names, lower case and
    without a trailing dot; None for any other host. Spec: RFC 8461 §3.2."""
    host = host_header.strip()
    if not host or len(host) > HOST_HEADER_MAX or not host.isascii() or host.startswith("["):
        return None  # ASCII before case folding: U+212A (KELVIN SIGN) lower-cases to "k"
    name, _, port = host.lower().partition(":")
    if port and not _PORT.fullmatch(port):
        return None
    name = name.rstrip(".")
    if not name.startswith(MTA_STS_PREFIX):
        return None
    domain = name[len(MTA_STS_PREFIX) :]
    if not domain or "." not in domain:
        return None
    return domain


def create_app(domains: Domains, settings: WebSettings) -> Starlette:
    """The Starlette app (see the module docstring). Spec: RFC 8461 §3.2, §3.3."""

    async def mta_sts(request: Request) -> Response:
        domain = policy_domain(request.headers.get("host", ""))
        if domain is None or await domains.get_domain(domain) is None:
            return PlainTextResponse("not found\n", status_code=404)
        return PlainTextResponse(settings.policy.text, headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/.well-known/mta-sts.txt", mta_sts, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
