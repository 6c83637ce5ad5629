"""The test suite's own rules: the real data is reached through one path only."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent

# "shared" followed by a path separator or a quoted path part: a way to the data
# beside the checkout. tests/helpers/paths.py's SHARED_DATA is the one allowed.
SHARED_PATH = re.compile(r"""["']shared["']|[/\\]shared[/\\]|shared/data""")


def test_only_conftest_spells_the_path_to_the_shared_data():
    """Every test reaches ../shared/data through tests.helpers.paths.SHARED_DATA (which .ci/run's
    second pass, run with the data out of reach, checks), never through its own path."""
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name not in {"paths.py", "test_repository.py"}
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if SHARED_PATH.search(line)
    ]
    assert offenders == []


# The one import circle allowed: Selector's operator sugar (a | b, a & b, a >> b)
# builds the composites of core.compose, which subclass core.base.Selector.
ALLOWED_CYCLES = [{"sftselect.core.base", "sftselect.core.compose"}]


def _cycles(adjacency: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(adjacency):
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycles_but_the_documented_one():
    """No module of sftselect imports, directly or through others, a module that imports it
    (imports inside functions count; imports only for type checking do not)."""
    grimp = __import__("pytest").importorskip("grimp")
    graph = grimp.build_graph("sftselect", exclude_type_checking_imports=True)
    modules = set(graph.modules)
    adjacency = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    assert _cycles(adjacency) == ALLOWED_CYCLES
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_old_import_paths_warn_and_give_the_moved_module():
    """Modules moved into core/, data/, models/, ... keep their old paths for one release."""
    import importlib
    import subprocess
    import sys

    from sftselect import _moved

    for old, new in _moved.MOVED.items():
        code = (
            "import warnings, importlib\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"
            f"new = importlib.import_module({new!r})\n"
            "try:\n"
            f"    importlib.import_module({old!r})\n"
            "except DeprecationWarning as w:\n"
            f"    assert {new!r} in str(w), w\n"
            "else:\n"
            "    raise SystemExit('no warning')\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            f"assert importlib.import_module({old!r}) is new\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, (old, result.stderr[-500:])
    assert (
        importlib.import_module("sftselect.generate").generate.__module__
        == "sftselect.generate.runner"
    )


def test_architecture_page_names_every_module():
    """docs/architecture.md describes what is really there: every module of the package is
    named on a line of the page that also names its folder (``selectors/dedup/minhash.py``,
    or ``minhash.py`` on the ``selectors/dedup/`` row), so a module cannot land without its
    row. Top-level modules need only their file name; ``__init__``/``__main__`` need none."""
    root = TESTS.parent / "src" / "sftselect"
    lines = (TESTS.parent / "docs" / "architecture.md").read_text("utf-8").splitlines()
    missing = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.name in {"__init__.py", "__main__.py"}:
            continue
        folder = f"{rel.parent.as_posix()}/" if rel.parent.parts else ""
        if not any(rel.name in line and folder in line for line in lines):
            missing.append(rel.as_posix())
    assert missing == []
