"""The public API: names, parameter handling, reprs."""

from __future__ import annotations

import pytest

import sftselect
from sftselect import (
    Chain,
    ColumnScoreSelector,
    InvalidParameterError,
    LengthSelector,
    PerSource,
    RandomSelector,
    Selector,
    Union,
)
from tests.helpers.conformance import CASES


def test_public_names_are_pinned():
    """__all__ lists exactly the public names (a change here is an API change)."""
    assert sorted(sftselect.__all__) == sorted(
        [
            "BackendError",
            "CacheError",
            "FingerprintError",
            "JudgeLogprobsError",
            "JudgeParseError",
            "JudgeRequestError",
            "ModelNotFoundError",
            "RowIndexMissingError",
            "Chain",
            "ColumnScoreSelector",
            "DataFormatError",
            "DeitaSelector",
            "DiversitySelector",
            "FacilityLocationSelector",
            "Format",
            "IFDSelector",
            "Intersection",
            "InvalidParameterError",
            "KCenterSelector",
            "JudgeFailureWarning",
            "KTooLargeWarning",
            "LengthSelector",
            "MissingColumnError",
            "MissingExtraError",
            "PerSource",
            "PerplexitySelector",
            "QualitySelector",
            "RandomSelector",
            "RankResult",
            "RepresentationFilter",
            "RewardSelector",
            "ScoreSelector",
            "TargetedSelector",
            "Selection",
            "ExactDedup",
            "MinHashDedup",
            "SemDeDup",
            "Selector",
            "SftSelectError",
            "SftSelectWarning",
            "SuperfilteringSelector",
            "Union",
            "__version__",
            "deita_preset",
            "detect_format",
            "load_data",
            "load_sample",
            "save_data",
        ]
    )
    for name in sftselect.__all__:
        assert hasattr(sftselect, name)


def test_get_params_and_clone():
    """get_params returns __init__'s parameters; clone overrides some and keeps the rest."""
    sel = LengthSelector(k=10, unit="words", ties="random", random_state=3)
    params = sel.get_params()
    assert params["k"] == 10 and params["unit"] == "words" and params["random_state"] == 3
    other = sel.clone(k=5)
    assert other.k == 5 and other.unit == "words" and sel.k == 10
    with pytest.raises(InvalidParameterError, match="no parameter"):
        sel.clone(kk=5)


def test_get_params_deep_and_set_params_reach_nested_selectors():
    """scikit-learn's conventions: objects (not descriptions), name__param for nested
    selectors and composite operands, set_params in place returning self."""
    backend_free = PerSource("source", {"a": 2}, base=LengthSelector(k=1, unit="chars"))
    union = Union(backend_free, RandomSelector(3, random_state=0), k=4)
    shallow = union.get_params(deep=False)
    assert shallow == {"selectors": union.selectors, "k": 4}
    deep = union.get_params()
    assert deep["selectors__0__base"] is backend_free.base
    assert deep["selectors__0__base__unit"] == "chars" and deep["selectors__1__random_state"] == 0
    assert union.set_params(k=5, selectors__1__random_state=7, selectors__0__base__k=2) is union
    assert union.k == 5 and union.selectors[1].random_state == 7 and backend_free.base.k == 2
    with pytest.raises(InvalidParameterError, match="has no parameter 'kk'"):
        union.set_params(kk=1)
    with pytest.raises(InvalidParameterError, match="operands are selectors__0 to selectors__1"):
        union.set_params(selectors__5__k=1)
    replaced = LengthSelector(k=9)
    backend_free.set_params(base=replaced)
    assert backend_free.selectors == (replaced,)


def test_describe_params_is_json_and_the_provenance_records_it():
    """describe_params gives JSON values (nested selectors described); the provenance uses it."""
    import json

    chain = Chain(ColumnScoreSelector("score", min_score=1.0), LengthSelector(k=2))
    described = chain.describe_params()
    assert json.loads(json.dumps(described)) == described
    assert described["selectors"][1] == {
        "selector": "LengthSelector",
        "params": LengthSelector(k=2).describe_params(),
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sklearn_clone_works_on_every_selector(case):
    """sklearn.base.clone gives an equal, independent selector (nested selectors cloned,
    backends and embedders shared)."""
    sklearn_base = pytest.importorskip("sklearn.base")
    selector = case.make(3, 0)
    copy = sklearn_base.clone(selector)
    assert type(copy) is type(selector) and copy is not selector
    assert repr(copy) == repr(selector)
    assert copy.describe_params() == selector.describe_params()
    for name, value in selector.get_params(deep=False).items():
        if isinstance(value, Selector):
            assert copy.get_params(deep=False)[name] is not value


def test_repr_shows_parameters():
    """repr names the class and every parameter."""
    assert repr(RandomSelector(3, random_state=1)).startswith("RandomSelector(k=3, random_state=1")
    assert "Union(LengthSelector(" in repr(Union(LengthSelector(1), RandomSelector(1), k=2))


def test_composite_clone_keeps_operands():
    """A composite's clone keeps its operands and overrides its own k."""
    u = Union(LengthSelector(1), RandomSelector(1), k=2).clone(k=4)
    assert u.k == 4 and len(u.selectors) == 2


def test_importing_the_library_loads_no_heavy_optional_dependency():
    """Importing sftselect and every submodule imports none of torch, transformers, Ray, sklearn."""
    import subprocess
    import sys

    code = (
        "import sys, sftselect, sftselect.cli, sftselect.evaluate, sftselect.train, "
        "sftselect.generate, sftselect.testsets, sftselect.prompts.templates, sftselect.distributed, "
        "sftselect.embedding, sftselect.backends\n"
        "heavy = ('torch', 'transformers', 'ray', 'sklearn', 'faiss', 'tiktoken')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_is_an_sftselect_error_defined_in_exceptions():
    """One tree: every exception class the package defines derives from SftSelectError and
    lives in sftselect.exceptions (modules re-export it), and sftselect exports each."""
    import importlib
    import inspect
    import pkgutil

    from sftselect import exceptions

    defined = {}
    for info in pkgutil.walk_packages(sftselect.__path__, "sftselect."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == info.name:
                defined[f"{info.name}.{name}"] = obj
    # Internal control flow, caught inside the module that raises it; never reaches a user.
    internal = {
        "sftselect.backends._openai_reply.Retryable",
        "sftselect.cli._common.CliError",
        "sftselect.data.arrow_columns.FieldTypeError",
        "sftselect.data.json_records.NotStreamable",
    }
    outside = sorted(
        n for n in set(defined) - internal if not n.startswith("sftselect.exceptions.")
    )
    assert outside == [], "define errors in sftselect/exceptions.py"
    errors = [
        o for o in vars(exceptions).values() if inspect.isclass(o) and issubclass(o, Exception)
    ]
    for error in errors:
        if issubclass(error, Warning):
            assert issubclass(error, sftselect.SftSelectWarning)
        else:
            assert issubclass(error, sftselect.SftSelectError), error
        assert error.__name__ in sftselect.__all__
