"""The selectors: length, LLM-judge quality, embedding diversity and coverage, random, any
score, and deduplication filters."""

from .dedup import ExactDedup, MinHashDedup, RepresentationFilter, SemDeDup
from .diversity import DiversitySelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .quality import QualitySelector
from .random import RandomSelector
from .score import ColumnScoreSelector, ScoreSelector

__all__ = [
    "ColumnScoreSelector",
    "DiversitySelector",
    "ExactDedup",
    "KCenterSelector",
    "LengthSelector",
    "MinHashDedup",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "ScoreSelector",
    "SemDeDup",
]
