"""MTA-STS (RFC 8461) without I/O: policy files (ours and other domains') and their ids.

Spec: RFC 8461.
"""

from postel.mtasts.own import OwnPolicy, own_policy

__all__ = ["OwnPolicy", "own_policy"]
