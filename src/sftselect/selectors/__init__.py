"""The selectors: length, LLM-judge quality, embedding diversity, random, any score."""

from .diversity import DiversitySelector
from .length import LengthSelector
from .quality import QualitySelector
from .random import RandomSelector
from .score import ColumnScoreSelector, ScoreSelector

__all__ = [
    "ColumnScoreSelector",
    "DiversitySelector",
    "LengthSelector",
    "QualitySelector",
    "RandomSelector",
    "ScoreSelector",
]
