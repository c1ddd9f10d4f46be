"""The directory: domains, accounts, aliases, catch-all, subaddressing and passwords."""

from postel.directory.addresses import (
    Address,
    InvalidAddress,
    normalize_domain,
    parse_address,
    split_recipient,
    to_a_label,
)
from postel.directory.passwords import (
    PasswordRejected,
    generate_password,
    make_credentials,
    needs_rehash,
    scram_keys,
    verify_password,
)
from postel.directory.resolve import (
    AliasExpansionError,
    Directory,
    DirectoryStore,
    Forwarded,
    LocalRecipients,
    LocalTarget,
    NotLocal,
    Resolution,
    UnknownRecipient,
)
from postel.sasl.saslprep import SaslprepError, saslprep

__all__ = [
    "Address",
    "AliasExpansionError",
    "Directory",
    "DirectoryStore",
    "Forwarded",
    "InvalidAddress",
    "LocalRecipients",
    "LocalTarget",
    "NotLocal",
    "PasswordRejected",
    "Resolution",
    "SaslprepError",
    "UnknownRecipient",
    "generate_password",
    "make_credentials",
    "needs_rehash",
    "normalize_domain",
    "parse_address",
    "saslprep",
    "scram_keys",
    "split_recipient",
    "to_a_label",
    "verify_password",
]
