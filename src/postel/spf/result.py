"""SPF results, the evaluation limits, and their bounds.

Spec: RFC 7208 §2.6 (results), §4.6.4 (processing limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# --- Bounds (owned by the spf package) -------------------------------------------------
SPF_DNS_LOOKUPS_MAX = 10
"""Terms causing DNS queries (include, a, mx, ptr, exists, redirect) evaluated per
check, nested evaluations included; one more is permerror. Spec: RFC 7208 §4.6.4."""
SPF_VOID_LOOKUPS_MAX = 2
"""Lookups answering NXDOMAIN or no records allowed per check; one more is permerror.
Spec: RFC 7208 §4.6.4 (the RFC's suggested default)."""
SPF_MX_NAMES_MAX = 10
"""MX records one ``mx`` mechanism may look up addresses for; more is permerror.
Spec: RFC 7208 §4.6.4."""
SPF_PTR_NAMES_MAX = 10
"""PTR names one ``ptr`` mechanism (or ``%{p}``) validates; the rest are ignored.
Spec: RFC 7208 §4.6.4, §5.5."""
SPF_CHECK_TIMEOUT_S = 20.0
"""Seconds one whole check may take; beyond it the result is temperror.
Spec: RFC 7208 §4.6.4 (at least 20 s suggested)."""


class Result(StrEnum):
    """The result of ``check_host()``. Spec: RFC 7208 §2.6."""

    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SpfLimits:
    """Processing limits of one check; the defaults are the RFC's. ``timeout_s`` is the
    time budget in seconds. Spec: RFC 7208 §4.6.4."""

    dns_lookups: int = SPF_DNS_LOOKUPS_MAX
    void_lookups: int = SPF_VOID_LOOKUPS_MAX
    mx_names: int = SPF_MX_NAMES_MAX
    ptr_names: int = SPF_PTR_NAMES_MAX
    timeout_s: float = SPF_CHECK_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one SPF check.

    ``result`` the SPF result; ``domain`` the <domain> checked; ``reason`` a short text
    for logs and Authentication-Results (which record and term decided, or what
    failed); ``explanation`` the text of the ``exp=`` modifier, only for ``fail`` and
    only when one could be obtained; ``mechanism`` the matching directive as written
    (None when no mechanism matched).

    Spec: RFC 7208 §2.6, §6.2, §9; RFC 8601 §2.7.2.
    """

    result: Result
    domain: str
    reason: str
    explanation: str | None = None
    mechanism: str | None = None
