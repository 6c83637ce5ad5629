"""The test suite's own rules: the real data is reached through one path only."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent

# "shared" followed by a path separator or a quoted path part: a way to the data
# beside the checkout. conftest.SHARED_DATA is the one allowed.
SHARED_PATH = re.compile(r"""shared["']?\s*[/,)]|/shared/""")


def test_only_conftest_spells_the_path_to_the_shared_data():
    """Every test reaches ../shared/data through conftest.SHARED_DATA (which .ci/run's
    second pass, run with the data out of reach, checks), never through its own path."""
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name not in {"conftest.py", "test_repository.py"}
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if SHARED_PATH.search(line)
    ]
    assert offenders == []
