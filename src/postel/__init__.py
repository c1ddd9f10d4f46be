"""postel: a complete mail system (MTA, MDA, trust layer) in one Python process."""

__version__ = "0.1.0"
