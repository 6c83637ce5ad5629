"""The extension contract: public hooks that composites and engines call, and the
engine kinds selectors declare (no Ray needed here; see test_distributed.py)."""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import sftselect
from sftselect import KTooLargeWarning, RankResult, ScoreSelector, Selector
from sftselect.core.base import EngineKind
from sftselect.core.constraints import K_CONSTRAINTS
from sftselect.core.validation import resolve_k
from sftselect.testing import check_selector
from tests.core.test_conformance import exported_selector_classes
from tests.helpers.conformance import CASES

SRC = Path(sftselect.__file__).resolve().parent

#: The kind each library selector declares (a change here changes how engines run it).
LIBRARY_KINDS = {
    "ScoreSelector": EngineKind.ROW_SCORE,
    "ColumnScoreSelector": EngineKind.ROW_SCORE,
    "LengthSelector": EngineKind.ROW_SCORE,
    "QualitySelector": EngineKind.ROW_SCORE,
    "RandomSelector": EngineKind.SEEDED_DRAW,
    "DeitaSelector": EngineKind.ROW_SCORE,
    "RewardSelector": EngineKind.ROW_SCORE,
    "IFDSelector": EngineKind.ROW_SCORE,
    "SuperfilteringSelector": EngineKind.ROW_SCORE,
    "PerplexitySelector": EngineKind.ROW_SCORE,
    "DiversitySelector": EngineKind.VECTORS_THEN_GLOBAL,
    "KCenterSelector": EngineKind.VECTORS_THEN_GLOBAL,
    "FacilityLocationSelector": EngineKind.VECTORS_THEN_GLOBAL,
    "TargetedSelector": EngineKind.VECTORS_THEN_GLOBAL,
    "RepresentationFilter": EngineKind.WHOLE_DATASET,
    "ExactDedup": EngineKind.DUPLICATE_GROUPS,
    "MinHashDedup": EngineKind.DUPLICATE_GROUPS,
    "SemDeDup": EngineKind.WHOLE_DATASET,
    "Chain": EngineKind.COMPOSITE,
    "Union": EngineKind.COMPOSITE,
    "Intersection": EngineKind.COMPOSITE,
    "PerSource": EngineKind.COMPOSITE,
}


def _declared_below_selector(cls: type) -> bool:
    """Whether ``engine_kind`` is set by ``cls`` or a base of it other than Selector."""
    mro = cls.__mro__
    return any("engine_kind" in vars(c) for c in mro[: mro.index(Selector)])


def test_every_exported_selector_declares_an_engine_kind():
    """Every selector the package exports says what an engine needs (not the fallback by
    omission): an EngineKind set by the library, and the one pinned here."""
    classes = exported_selector_classes() | {ScoreSelector}
    assert classes, "no exported selector found"
    for cls in classes:
        assert isinstance(cls.engine_kind, EngineKind), cls.__qualname__
        assert _declared_below_selector(cls), f"{cls.__qualname__} declares no engine_kind"
    assert {c.__name__: c.engine_kind for c in classes} == LIBRARY_KINDS


def test_the_fallback_kind_is_whole_dataset():
    """A selector that declares nothing is WHOLE_DATASET, which any selector satisfies."""
    assert Selector.engine_kind is EngineKind.WHOLE_DATASET

    class Plain(Selector):
        _parameter_constraints: ClassVar[dict] = {"k": K_CONSTRAINTS}

        def __init__(self, k=2):
            self.k = k

        def _rank(self, dataset, rng, limit):
            return RankResult(
                order=np.arange(len(dataset), dtype=np.int64), n_eligible=len(dataset)
            )

    assert Plain.engine_kind is EngineKind.WHOLE_DATASET and Plain().input_columns() is None
    check_selector(Plain())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_engine_calls_give_what_run_gives(case, small_alpaca):
    """check_k, resolve_seed, rank and build_selection (what an engine calls) reproduce
    run() for every selector, and full_ranking is rank_indices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        one = case.make(3, 7).run(small_alpaca)
        selector = case.make(3, 7)
        k = selector.check_k()
        rng, seed = selector.resolve_seed()
        n = len(small_alpaca)
        limit = None if k is None else min(resolve_k(k, n), n)
        result = selector.rank(small_alpaca, rng, limit)
        made = selector.build_selection(result, n=n, k=k, seed=seed)
        full, _ = case.make(3, 7).full_ranking(small_alpaca)
        ranking = case.make(3, 7).rank_indices(small_alpaca)
    assert made.ranked.tolist() == one.ranked.tolist()
    assert made.indices.tolist() == one.indices.tolist()
    assert made.seed == one.seed and made.n_eligible == one.n_eligible
    assert np.asarray(full.order).tolist() == ranking.tolist()


def test_score_selector_hooks_are_public():
    """ScoreSelector's engine-facing calls: score_with_rules, bounds, check_k."""
    from sftselect import LengthSelector

    selector = LengthSelector(k=2, unit="words", min_length=1, max_length=9)
    assert selector.bounds() == (1, 9) and selector.check_k() == 2
    from datasets import Dataset

    ds = Dataset.from_dict({"instruction": ["a", "b", "c"], "output": ["x y", "", "x"]})
    scored = selector.score_with_rules(ds)
    assert scored.scores.tolist() == [2.0, 0.0, 1.0]
    assert scored.eligible.tolist() == [True, False, True]  # drop_empty


def test_check_selector_catches_a_false_row_score_declaration():
    """A ScoreSelector whose score of a row depends on the other rows fails the check
    (it must declare WHOLE_DATASET), and passes once it does."""

    class Centred(ScoreSelector):
        def _score(self, dataset):
            lengths = np.array([len(t) for t in dataset["output"]], dtype=float)
            return lengths - lengths.mean() if lengths.size else lengths

    with pytest.raises(AssertionError, match="declares ROW_SCORE but scores rows differently"):
        check_selector(Centred(k=3))

    class DeclaredCentred(Centred):
        engine_kind = EngineKind.WHOLE_DATASET

    check_selector(DeclaredCentred(k=3))


def test_check_selector_catches_false_duplicate_groups_declarations():
    """A DUPLICATE_GROUPS filter whose keys depend on the block (a row's place in it), or
    whose _rank departs from the grouping steps an engine runs, fails the check."""
    import pyarrow as pa

    from sftselect import ExactDedup

    class BlockKeyed(ExactDedup):
        def duplicate_keys(self, dataset):
            keys = super().duplicate_keys(dataset)
            hashes = keys.column("identity_hash").to_numpy() ^ np.arange(
                len(dataset), dtype=np.uint64
            )
            return keys.set_column(1, "identity_hash", pa.array(hashes))

    with pytest.raises(AssertionError, match="keys rows differently in halves"):
        check_selector(BlockKeyed())

    class OwnRank(ExactDedup):
        def _rank(self, dataset, rng, limit):
            order = np.arange(len(dataset))[::-1].copy()  # not the kept rows in row order
            return RankResult(order=order, n_eligible=len(dataset))

    with pytest.raises(AssertionError, match="DUPLICATE_GROUPS steps do not give its ranking"):
        check_selector(OwnRank())


def test_check_selector_catches_a_wrong_input_columns():
    """A SEEDED_DRAW selector that reads a column it does not name fails the check."""

    class Stratified(Selector):
        engine_kind = EngineKind.SEEDED_DRAW
        _uses_random_state = True
        _parameter_constraints: ClassVar[dict] = {
            "k": K_CONSTRAINTS,
            "random_state": ["random_state"],
        }

        def __init__(self, k=3, *, random_state=None):
            self.k, self.random_state = k, random_state

        def input_columns(self):
            return []  # wrong: the ranking reads "source"

        def _rank(self, dataset, rng, limit):
            if "source" in dataset.column_names:
                first = np.array([s == "flan" for s in dataset["source"]], dtype=bool)
            else:
                first = np.zeros(len(dataset), dtype=bool)
            order = np.lexsort((rng.permutation(len(dataset)), ~first))
            return RankResult(order=order.astype(np.int64), n_eligible=len(dataset))

    with pytest.raises(AssertionError, match="input_columns"):
        check_selector(Stratified())


# -- composites and engines call public names only ------------------------------------------


def _private_calls(path: Path) -> list[str]:
    """``obj._name`` uses in a module where ``obj`` is not ``self``, ``cls`` or ``super()``
    (dunder names aside)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
            continue
        found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:  # sftselect's own modules
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(
                        f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
                    )
    return found


@pytest.mark.parametrize(
    "module",
    ["core/compose.py", *sorted(p.name for p in (SRC / "distributed").glob("*.py"))],
    ids=str,
)
def test_composites_and_engines_use_public_names_only(module):
    """core/compose.py and sftselect/distributed/ reach other modules' classes (selectors,
    requests, clustering) through public names only: the contract a user can follow."""
    path = SRC / module if "/" in module else SRC / "distributed" / module
    assert _private_calls(path) == []


def test_the_contract_is_documented_on_selector():
    """Each public hook is named in Selector's docstring and documented itself."""
    doc = inspect.getdoc(Selector) or ""
    for name in (
        "check_k",
        "resolve_seed",
        "rank",
        "full_ranking",
        "build_selection",
        "input_columns",
        "check_portable",
        "engine_kind",
    ):
        assert f":meth:`{name}`" in doc or f":attr:`{name}`" in doc, name
        if name != "engine_kind":
            assert inspect.getdoc(getattr(Selector, name)), name
    for name in ("score_with_rules", "bounds"):
        assert f":meth:`{name}`" in (inspect.getdoc(ScoreSelector) or ""), name
