"""LIST and LSUB mailbox patterns: ``*`` matches anything, ``%`` anything but the
hierarchy separator, every other character itself; a leading ``INBOX`` matches in any
case.

A pattern is a client's input, so matching must stay linear whatever it holds. A
backtracking matcher (a regular expression with one ``.*`` per ``*``) takes time that
grows with the name length to the power of the number of wildcards when a name almost
matches: ``LIST "" "**********x"`` against a mailbox name of a few dozen characters stalls
the whole server. Here a pattern is a small automaton run over the name once, with its
states held as the bits of one integer: each character costs a few integer operations
on a number of ``len(pattern)`` bits, and a run of wildcards is one wildcard (``*`` if it
holds one, else ``%``), so no pattern can cost more than about twice the name's length
in states.

Spec: RFC 9051 §6.3.9 (LIST, the ``*`` and ``%`` wildcards), §5.1 (INBOX is case-
insensitive); RFC 3501 §6.3.9.
"""

from __future__ import annotations

__all__ = ["ListPattern"]

_INBOX = "INBOX"


class ListPattern:
    """``reference`` + ``pattern`` of a LIST or LSUB command, ready to match mailbox
    names (``separator`` is the hierarchy separator). ``match(name)`` is True when the
    whole name matches. Never raises. Spec: RFC 9051 §6.3.9."""

    __slots__ = ("_accept", "_any", "_literals", "_local", "_minimum", "_separator", "_wild")

    def __init__(self, reference: str, pattern: str, separator: str = "/") -> None:
        full = reference + pattern
        tokens: list[str] = []
        for ch in full:
            if ch in "*%" and tokens and tokens[-1] in "*%":
                tokens[-1] = "*" if "*" in (ch, tokens[-1]) else "%"
            else:
                tokens.append(ch)
        folded = full[:5].upper() == _INBOX and (len(full) == 5 or full[5] in (separator, "*", "%"))
        self._separator = separator
        self._any = 0  # positions of "*"
        self._local = 0  # positions of "%"
        self._literals: dict[str, int] = {}  # character -> positions it matches
        for i, token in enumerate(tokens):
            bit = 1 << i
            if token == "*":
                self._any |= bit
            elif token == "%":
                self._local |= bit
            elif folded and i < 5:
                for variant in (_INBOX[i], _INBOX[i].lower()):
                    self._literals[variant] = self._literals.get(variant, 0) | bit
            else:
                self._literals[token] = self._literals.get(token, 0) | bit
        self._wild = self._any | self._local
        self._accept = 1 << len(tokens)
        self._minimum = len(tokens) - bin(self._wild).count("1")

    def _closed(self, states: int) -> int:
        # A wildcard also matches nothing: being before it is being after it. Runs are
        # one token, so the position after a wildcard is never a wildcard.
        return states | ((states & self._wild) << 1)

    def match(self, name: str) -> bool:
        """Whether ``name`` (the whole of it) matches the pattern."""
        if len(name) < self._minimum:
            return False  # fewer characters than the pattern's literals
        states = self._closed(1)
        separator, any_, local, literals = self._separator, self._any, self._local, self._literals
        for ch in name:
            stay = states & (any_ if ch == separator else any_ | local)
            states = self._closed(stay | ((states & literals.get(ch, 0)) << 1))
            if not states:
                return False
        return bool(states & self._accept)
