"""The selectors: length, LLM-judge quality, embedding diversity and coverage, random, any
score, and deduplication filters."""

from .dedup import ExactDedup, MinHashDedup, RepresentationFilter, SemDeDup
from .diversity import DiversitySelector
from .facility import FacilityLocationSelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .quality import QualitySelector
from .random import RandomSelector
from .score import ColumnScoreSelector, ScoreSelector
from .targeted import TargetedSelector

__all__ = [
    "ColumnScoreSelector",
    "DiversitySelector",
    "ExactDedup",
    "FacilityLocationSelector",
    "KCenterSelector",
    "LengthSelector",
    "MinHashDedup",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "ScoreSelector",
    "SemDeDup",
    "TargetedSelector",
]
