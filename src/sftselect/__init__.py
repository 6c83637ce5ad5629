"""sftselect: data-selection strategies for supervised instruction fine-tuning.

>>> from sftselect import LengthSelector
>>> subset = LengthSelector(k=1000).select(dataset)  # doctest: +SKIP
"""

from . import _moved
from ._version import __version__
from .core.base import RankResult, Selection, Selector
from .core.compose import Chain, Intersection, PerSource, Union
from .data.formats import Format, detect_format
from .data.io import load_data, save_data
from .data.sample import load_sample
from .exceptions import (
    BackendError,
    CacheError,
    DataFormatError,
    FingerprintError,
    InvalidParameterError,
    JudgeFailureWarning,
    JudgeLogprobsError,
    JudgeParseError,
    JudgeRequestError,
    KTooLargeWarning,
    MissingColumnError,
    MissingExtraError,
    ModelNotFoundError,
    RowIndexMissingError,
    SftSelectError,
    SftSelectWarning,
)
from .selectors import (
    ColumnScoreSelector,
    DeitaSelector,
    DiversitySelector,
    ExactDedup,
    FacilityLocationSelector,
    IFDSelector,
    KCenterSelector,
    LengthSelector,
    MinHashDedup,
    PerplexitySelector,
    QualitySelector,
    RandomSelector,
    RepresentationFilter,
    RewardSelector,
    ScoreSelector,
    SemDeDup,
    SuperfilteringSelector,
    TargetedSelector,
    deita_preset,
)

_moved.install()

__all__ = [
    "BackendError",
    "CacheError",
    "Chain",
    "ColumnScoreSelector",
    "DataFormatError",
    "DeitaSelector",
    "DiversitySelector",
    "ExactDedup",
    "FacilityLocationSelector",
    "FingerprintError",
    "Format",
    "IFDSelector",
    "Intersection",
    "InvalidParameterError",
    "JudgeFailureWarning",
    "JudgeLogprobsError",
    "JudgeParseError",
    "JudgeRequestError",
    "KCenterSelector",
    "KTooLargeWarning",
    "LengthSelector",
    "MinHashDedup",
    "MissingColumnError",
    "MissingExtraError",
    "ModelNotFoundError",
    "PerSource",
    "PerplexitySelector",
    "QualitySelector",
    "RandomSelector",
    "RankResult",
    "RepresentationFilter",
    "RewardSelector",
    "RowIndexMissingError",
    "ScoreSelector",
    "Selection",
    "Selector",
    "SemDeDup",
    "SftSelectError",
    "SftSelectWarning",
    "SuperfilteringSelector",
    "TargetedSelector",
    "Union",
    "__version__",
    "deita_preset",
    "detect_format",
    "load_data",
    "load_sample",
    "save_data",
]
