"""MTA-STS (RFC 8461) without I/O: policy files (ours and other domains') and their ids.

Spec: RFC 8461.
"""

from postel.mtasts.own import OwnPolicy, own_policy
from postel.mtasts.policy import (
    MAX_AGE_MAX,
    POLICY_SIZE_MAX,
    Policy,
    PolicyMode,
    StsRecord,
    mx_matches,
    parse_policy,
    parse_sts_record,
    select_sts_record,
)

__all__ = [
    "MAX_AGE_MAX",
    "POLICY_SIZE_MAX",
    "OwnPolicy",
    "Policy",
    "PolicyMode",
    "StsRecord",
    "mx_matches",
    "own_policy",
    "parse_policy",
    "parse_sts_record",
    "select_sts_record",
]
