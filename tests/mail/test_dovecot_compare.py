"""ENVELOPE / BODY / BODYSTRUCTURE / RFC822.SIZE against Dovecot 2.3.19's answers.

Every difference must be listed, with its reason, in dovecot_differences.tsv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .dovecot_compare import CORPUS, cases, differences

DIFFERENCES = Path(__file__).with_name("dovecot_differences.tsv")

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="conformance corpus not present")


def _explained() -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for line in DIFFERENCES.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        file, field, path, _ours, _dovecot, reason = line.split("\t")
        assert reason.strip(), f"unexplained difference: {line}"
        out.add((file, field, path))
    return out


def test_every_difference_is_explained() -> None:
    explained = _explained()
    seen: set[tuple[str, str, str]] = set()
    unexplained: list[str] = []
    total = agree = 0
    for case in cases():
        total += 1
        assert len(case.message) == case.size
        diffs = differences(case)
        if not diffs:
            agree += 1
        for field, path, ours, dovecot in diffs:
            key = (case.file, field, path)
            seen.add(key)
            if key not in explained:
                unexplained.append(f"{case.file}\t{field}\t{path}\t{ours}\t{dovecot}")
    print(f"agreement with Dovecot: {agree}/{total} messages ({100 * agree / total:.1f}%)")
    assert not unexplained, "\n".join(unexplained)
    assert explained <= seen, f"stale entries: {sorted(explained - seen)}"
    assert agree / total >= 0.95
