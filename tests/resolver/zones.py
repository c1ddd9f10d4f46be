"""Zone texts shared by the resolver tests (master-file format, RFC 1035 §5)."""

from __future__ import annotations

SOA_MINIMUM_S = 60
"""Negative-caching TTL of the test zones: min(SOA TTL 300, SOA MINIMUM). RFC 2308 §5."""

LONG_TXT_STRINGS = ("a" * 255, "b" * 255, "c" * 3)
MANY_A_RECORDS = 101

_SOA = f"""$TTL 300
@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 {SOA_MINIMUM_S}
@ IN NS ns.example.test.
"""


def _quoted(strings: tuple[str, ...]) -> str:
    return " ".join(f'"{s}"' for s in strings)


def _many_a() -> str:
    return "".join(f"many IN A 198.51.100.{i}\n" for i in range(1, MANY_A_RECORDS + 1))


EXAMPLE_TEST = (
    _SOA
    + f"""
ns        IN A     127.0.0.1
multi     IN MX    20 mx-b.example.test.
multi     IN MX    10 mx-a.example.test.
multi     IN MX    10 mx-c.example.test.
multi     IN MX    30 mx-d.example.net.
nullmx    IN MX    0 .
nomx      IN A     192.0.2.10
nomx      IN AAAA  2001:db8::10
spf       IN TXT   "v=spf1 " "ip4:192.0.2.0/24 " "-all"
spf       IN TXT   "second record"
longtxt   IN TXT   {_quoted(LONG_TXT_STRINGS)}
alias     IN CNAME alias2
alias2    IN CNAME nomx
dangling  IN CNAME missing
short 30  IN A     192.0.2.30
xn--bcher-kva IN A 192.0.2.20
{_many_a()}"""
)

REVERSE_V4 = (
    _SOA
    + """
10 IN PTR nomx.example.test.
10 IN PTR alias.example.test.
"""
)

REVERSE_V6_ORIGIN = "8.b.d.0.1.0.0.2.ip6.arpa"
REVERSE_V6 = (
    _SOA
    + """
0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR nomx.example.test.
"""
)

ZONES = {
    "example.test": EXAMPLE_TEST,
    "2.0.192.in-addr.arpa": REVERSE_V4,
    REVERSE_V6_ORIGIN: REVERSE_V6,
}
