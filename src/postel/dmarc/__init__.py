"""DMARC (RFC 9989, which obsoletes RFC 7489 and RFC 9091): policy records, policy
discovery and Organizational Domains by the DNS Tree Walk, Identifier Alignment and
the result and disposition of one message.

``record`` and ``author`` are pure; ``discovery`` queries the injected ``Resolver``;
``evaluate`` ties them together and never raises for bad input or DNS failures.
Section numbers in this package are those of draft-ietf-dmarc-dmarcbis-41, the last
draft before RFC 9989.

Spec: RFC 9989.
"""

from postel.dmarc.author import (
    DMARC_FROM_ADDRESSES_MAX,
    DMARC_FROM_FIELD_MAX,
    AuthorDomains,
    AuthorProblem,
    author_domains,
    normalise_domain,
)
from postel.dmarc.discovery import (
    DMARC_NODE,
    DMARC_TREE_WALK_QUERIES_MAX,
    DmarcPermError,
    DmarcTempError,
    FoundRecord,
    PolicyDiscovery,
    PolicyTag,
    TreeWalk,
    TreeWalker,
    tree_walk_targets,
)
from postel.dmarc.evaluate import (
    DMARC_ALIGNMENT_WALKS_MAX,
    DMARC_AUTHOR_DOMAINS_MAX,
    DMARC_EVALUATION_TIMEOUT_S,
    MultipleAuthors,
    evaluate,
)
from postel.dmarc.record import (
    DMARC_RECORD_LENGTH_MAX,
    DMARC_REPORT_URIS_MAX,
    DMARC_TAGS_MAX,
    AlignmentMode,
    DmarcError,
    DmarcRecord,
    DmarcRecordError,
    FailureOption,
    Policy,
    PsdFlag,
    ReportUri,
    is_dmarc_record,
    parse_record,
)
from postel.dmarc.result import (
    Disposition,
    DmarcResult,
    IdentifierCheck,
    Method,
    Override,
    PolicyOverride,
    Reason,
    Result,
)

__all__ = [
    "DMARC_ALIGNMENT_WALKS_MAX",
    "DMARC_AUTHOR_DOMAINS_MAX",
    "DMARC_EVALUATION_TIMEOUT_S",
    "DMARC_FROM_ADDRESSES_MAX",
    "DMARC_FROM_FIELD_MAX",
    "DMARC_NODE",
    "DMARC_RECORD_LENGTH_MAX",
    "DMARC_REPORT_URIS_MAX",
    "DMARC_TAGS_MAX",
    "DMARC_TREE_WALK_QUERIES_MAX",
    "AlignmentMode",
    "AuthorDomains",
    "AuthorProblem",
    "Disposition",
    "DmarcError",
    "DmarcPermError",
    "DmarcRecord",
    "DmarcRecordError",
    "DmarcResult",
    "DmarcTempError",
    "FailureOption",
    "FoundRecord",
    "IdentifierCheck",
    "Method",
    "MultipleAuthors",
    "Override",
    "Policy",
    "PolicyDiscovery",
    "PolicyOverride",
    "PolicyTag",
    "PsdFlag",
    "Reason",
    "ReportUri",
    "Result",
    "TreeWalk",
    "TreeWalker",
    "author_domains",
    "evaluate",
    "is_dmarc_record",
    "normalise_domain",
    "parse_record",
    "tree_walk_targets",
]
