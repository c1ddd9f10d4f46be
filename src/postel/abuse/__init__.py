"""The one abuse tracker shared by every protocol (RELIABILITY.md D6)."""

from postel.abuse.tracker import AbuseEvent, AbuseTracker, Admission

__all__ = ["AbuseEvent", "AbuseTracker", "Admission"]
