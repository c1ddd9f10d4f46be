"""The MTA-STS policy postel publishes for its own domains.

The policy file lists our MX host name; its id (published in the ``_mta-sts`` TXT record)
is derived from the file's text, so it changes exactly when the policy does.

Spec: RFC 8461 §3.1 (TXT record, id), §3.2 (policy file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

POLICY_ID_LENGTH = 20
"""Characters of the policy id (RFC 8461 §3.1: 1 to 32 alphanumerics)."""


@dataclass(frozen=True, slots=True)
class OwnPolicy:
    """``text``: the policy file (CRLF line ends, RFC 8461 §3.2); ``id``: the value for
    ``v=STSv1; id=...`` in the ``_mta-sts.<domain>`` TXT record. Spec: RFC 8461 §3."""

    text: str
    id: str

    @property
    def txt_record(self) -> str:
        """The TXT record's value. Spec: RFC 8461 §3.1."""
        return f"v=STSv1; id={self.id}"


def own_policy(mode: str, max_age: int, mx_hosts: Sequence[str]) -> OwnPolicy:
    """The policy file for ``mode`` ("none", "testing", "enforce"), ``max_age`` seconds
    and the MX host names (or ``*.`` patterns) mail for the domain goes to.

    Raises ValueError for another mode, a max_age outside 0..31557600 or no host.
    Spec: RFC 8461 §3.2.
    """
    if mode not in ("none", "testing", "enforce"):
        raise ValueError(f"MTA-STS mode must be none, testing or enforce: {mode!r}")
    if not 0 <= max_age <= 31_557_600:
        raise ValueError(f"MTA-STS max_age out of range: {max_age}")
    if not mx_hosts:
        raise ValueError("MTA-STS policy needs at least one mx host")
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {host.rstrip('.').lower()}" for host in mx_hosts]
    lines.append(f"max_age: {max_age}")
    text = "".join(line + "\r\n" for line in lines)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return OwnPolicy(text=text, id=digest[:POLICY_ID_LENGTH])
