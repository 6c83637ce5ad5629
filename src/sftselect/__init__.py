"""sftselect: data-selection strategies for supervised instruction fine-tuning.

>>> from sftselect import LengthSelector
>>> subset = LengthSelector(k=1000).select(dataset)  # doctest: +SKIP
"""

from ._version import __version__
from .base import RankResult, Selection, Selector
from .compose import Chain, Intersection, PerSource, Union
from .exceptions import (
    DataFormatError,
    InvalidParameterError,
    JudgeFailureWarning,
    KTooLargeWarning,
    MissingColumnError,
    MissingExtraError,
    SftSelectError,
    SftSelectWarning,
)
from .formats import Format, detect_format
from .io import load_data, save_data
from .sample import load_sample
from .selectors import (
    ColumnScoreSelector,
    DiversitySelector,
    KCenterSelector,
    LengthSelector,
    QualitySelector,
    RandomSelector,
    RepresentationFilter,
    ScoreSelector,
)

__all__ = [
    "Chain",
    "ColumnScoreSelector",
    "DataFormatError",
    "DiversitySelector",
    "Format",
    "Intersection",
    "InvalidParameterError",
    "JudgeFailureWarning",
    "KCenterSelector",
    "KTooLargeWarning",
    "LengthSelector",
    "MissingColumnError",
    "MissingExtraError",
    "PerSource",
    "QualitySelector",
    "RandomSelector",
    "RankResult",
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
