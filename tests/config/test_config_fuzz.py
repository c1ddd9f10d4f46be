"""Any file text either loads or raises ConfigError, never anything else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.config import load
from postel.errors import ConfigError

EXAMPLE = (Path(__file__).parents[2] / "docs" / "postel.example.toml").read_text()
LINES = EXAMPLE.splitlines()

fragments = st.sampled_from(
    [
        *LINES,
        "[smtp]",
        "[listen]",
        "x = 1",
        "smtp = 3",
        "tls = []",
        "[[abuse]]",
        "a.b.c = 1",
        'hostname = "é.example"',
        "window = -1",
        'exempt = [1, "x"]',
        "= 1",
        "[",
        '"',
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(fragments, max_size=30) | st.text(max_size=200))
def test_load_raises_only_config_error(lines: list[str] | str) -> None:
    text = lines if isinstance(lines, str) else "\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "postel.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load(path)
        except ConfigError as exc:
            assert exc.file == str(path)
