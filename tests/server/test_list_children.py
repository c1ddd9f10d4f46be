"""LIST's child attributes computed in one pass (``imap_mailboxes.superiors``) give what
the definitions say: a name has children when another name lies below it, and CHILDINFO
names a parent of a subscribed name the patterns do not list.

Spec: RFC 9051 §6.3.9 (\\HasChildren, \\HasNoChildren); RFC 5258 §3.5 (CHILDINFO).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postel.server.imap_mailboxes import superiors

SEP = "/"
level = st.sampled_from(["a", "b", "ab", "INBOX", "x y", "ä"])
name = st.lists(level, min_size=1, max_size=4).map(SEP.join)


def _below(parent: str, names: set[str]) -> bool:
    return any(n.startswith(parent + SEP) for n in names)


@given(st.sets(name, max_size=12), st.sets(name, max_size=12))
def test_superiors_are_the_names_with_something_below(names: set[str], probes: set[str]) -> None:
    found = superiors(names)
    for candidate in names | probes | found:
        assert (candidate in found) == _below(candidate, names)


def test_superiors_of_a_deep_name_are_all_its_levels() -> None:
    assert superiors(["a/b/c", "a/d"]) == {"a", "a/b"}
    assert superiors([]) == set()
    assert superiors(["solo"]) == set()
