"""The public API: names, parameter handling, reprs."""

from __future__ import annotations

import pytest

import sftselect
from sftselect import LengthSelector, RandomSelector, Union


def test_public_names_are_pinned():
    """__all__ lists exactly the public names (a change here is an API change)."""
    assert sorted(sftselect.__all__) == sorted(
        [
            "Chain",
            "ColumnScoreSelector",
            "DataFormatError",
            "DiversitySelector",
            "Format",
            "Intersection",
            "InvalidParameterError",
            "KCenterSelector",
            "JudgeFailureWarning",
            "KTooLargeWarning",
            "LengthSelector",
            "MissingColumnError",
            "MissingExtraError",
            "PerSource",
            "QualitySelector",
            "RandomSelector",
            "RepresentationFilter",
            "ScoreSelector",
            "Selection",
            "Selector",
            "SftSelectError",
            "SftSelectWarning",
            "Union",
            "__version__",
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
    with pytest.raises(TypeError, match="no parameter"):
        sel.clone(kk=5)


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
        "sftselect.generate, sftselect.testsets, sftselect.templates, sftselect.distributed, "
        "sftselect.embedding, sftselect.backends\n"
        "heavy = ('torch', 'transformers', 'ray', 'sklearn', 'faiss', 'tiktoken')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
