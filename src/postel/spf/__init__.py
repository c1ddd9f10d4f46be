"""SPF (RFC 7208): record parsing, macro expansion and ``check_host()`` over the
injected DNS ``Resolver``.

``record`` and ``macro`` are pure; ``check`` does the DNS queries. Results are
``SpfResult`` values; no SPF problem escapes as an exception.

Spec: RFC 7208.
"""

from postel.spf.check import SpfChecker, check_helo, check_host, check_mail_from
from postel.spf.errors import SpfError, SpfPermError, SpfSyntaxError, SpfTempError
from postel.spf.macro import (
    SPF_DOMAIN_NAME_MAX,
    SPF_EXPLANATION_MAX,
    SPF_LABEL_MAX,
    MacroContext,
    MacroExpand,
    MacroString,
    expand,
    expand_domain,
    expand_explanation,
    parse_domain_spec,
    parse_macro_string,
)
from postel.spf.record import (
    SPF_RECORD_LENGTH_MAX,
    SPF_TERMS_MAX,
    Mechanism,
    MechanismKind,
    Modifier,
    Qualifier,
    Record,
    is_spf_record,
    parse_mechanism,
    parse_record,
)
from postel.spf.result import (
    SPF_CHECK_TIMEOUT_S,
    SPF_DNS_LOOKUPS_MAX,
    SPF_MX_NAMES_MAX,
    SPF_PTR_NAMES_MAX,
    SPF_VOID_LOOKUPS_MAX,
    Result,
    SpfLimits,
    SpfResult,
)

__all__ = [
    "SPF_CHECK_TIMEOUT_S",
    "SPF_DNS_LOOKUPS_MAX",
    "SPF_DOMAIN_NAME_MAX",
    "SPF_EXPLANATION_MAX",
    "SPF_LABEL_MAX",
    "SPF_MX_NAMES_MAX",
    "SPF_PTR_NAMES_MAX",
    "SPF_RECORD_LENGTH_MAX",
    "SPF_TERMS_MAX",
    "SPF_VOID_LOOKUPS_MAX",
    "MacroContext",
    "MacroExpand",
    "MacroString",
    "Mechanism",
    "MechanismKind",
    "Modifier",
    "Qualifier",
    "Record",
    "Result",
    "SpfChecker",
    "SpfError",
    "SpfLimits",
    "SpfPermError",
    "SpfResult",
    "SpfSyntaxError",
    "SpfTempError",
    "check_helo",
    "check_host",
    "check_mail_from",
    "expand",
    "expand_domain",
    "expand_explanation",
    "is_spf_record",
    "parse_domain_spec",
    "parse_macro_string",
    "parse_mechanism",
    "parse_record",
]
