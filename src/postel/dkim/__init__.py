"""DKIM for postel: signing keys (RSA-2048 and Ed25519), signing outgoing mail,
verifying received mail and ARC validation and sealing, all with dkimpy; DNS goes
through postel's own resolver.

Spec: RFC 6376, RFC 8463 (Ed25519), RFC 8301 (key sizes, SHA-256), RFC 8617 (ARC).
"""

import logging as _logging

from postel.dkim.accel import install as _install_accelerators
from postel.dkim.arc import (
    ARC_FIELDS_MAX,
    ARC_INSTANCES_MAX,
    ARC_KEY_LOOKUP_TIMEOUT_S,
    ARC_KEY_LOOKUPS_MAX,
    ArcResult,
    ArcSealError,
    ArcSetResult,
    ChainValidation,
    seal_message,
    verify_arc,
)
from postel.dkim.keys import (
    DkimKey,
    KeyAlgorithm,
    dns_record,
    generate_key,
    load_keys,
    write_key,
)
from postel.dkim.sign import SIGNED_HEADERS, sign_as_author, sign_message
from postel.dkim.verify import (
    DKIM_FUTURE_SKEW_S,
    DKIM_KEY_LOOKUP_TIMEOUT_S,
    DKIM_RSA_BITS_MAX,
    DKIM_RSA_BITS_MIN,
    DKIM_SIGNATURES_MAX,
    DkimLimits,
    DkimResult,
    DkimStatus,
    TxtResolver,
    verify_message,
)

_install_accelerators()
# dkimpy logs what it finds wrong with a message under check at ERROR (a duplicate ARC
# set, a bad key record): text any sender controls. postel records the same verdict
# with its reason (Authentication-Results, the transaction's log line), so those lines
# would only let senders write errors into the operator's log.
_logging.getLogger("dkimpy").setLevel(_logging.CRITICAL)

__all__ = [
    "ARC_FIELDS_MAX",
    "ARC_INSTANCES_MAX",
    "ARC_KEY_LOOKUPS_MAX",
    "ARC_KEY_LOOKUP_TIMEOUT_S",
    "DKIM_FUTURE_SKEW_S",
    "DKIM_KEY_LOOKUP_TIMEOUT_S",
    "DKIM_RSA_BITS_MAX",
    "DKIM_RSA_BITS_MIN",
    "DKIM_SIGNATURES_MAX",
    "SIGNED_HEADERS",
    "ArcResult",
    "ArcSealError",
    "ArcSetResult",
    "ChainValidation",
    "DkimKey",
    "DkimLimits",
    "DkimResult",
    "DkimStatus",
    "KeyAlgorithm",
    "TxtResolver",
    "dns_record",
    "generate_key",
    "load_keys",
    "seal_message",
    "sign_as_author",
    "sign_message",
    "verify_arc",
    "verify_message",
    "write_key",
]
