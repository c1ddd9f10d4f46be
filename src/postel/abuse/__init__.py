"""The one abuse tracker shared by every protocol (RELIABILITY.md D6), with the
per-account sending limits of submission."""

from postel.abuse.accounts import ACCOUNT_WINDOW_S, AccountLimit, AccountLimiter, AccountUsage
from postel.abuse.tracker import AbuseEvent, AbuseTracker, Admission

__all__ = [
    "ACCOUNT_WINDOW_S",
    "AbuseEvent",
    "AbuseTracker",
    "AccountLimit",
    "AccountLimiter",
    "AccountUsage",
    "Admission",
]
