"""postel's web listener: an ASGI app (today: the MTA-STS policy file and a health
check) served by uvicorn inside postel's event loop.

Spec: RFC 8461 §3.2-§3.3; RFC 9112.
"""

from postel.web.app import Domains, WebSettings, create_app, policy_domain
from postel.web.server import WebServer

__all__ = ["Domains", "WebServer", "WebSettings", "create_app", "policy_domain"]
