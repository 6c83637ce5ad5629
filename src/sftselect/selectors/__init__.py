"""The selectors: length, LLM-judge quality, model log-probs (IFD, Superfiltering, perplexity), embedding diversity and coverage, random, any score."""

from .dedup import RepresentationFilter
from .diversity import DiversitySelector
from .ifd import IFDSelector, SuperfilteringSelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .perplexity import PerplexitySelector
from .quality import QualitySelector
from .random import RandomSelector
from .score import ColumnScoreSelector, ScoreSelector

__all__ = [
    "ColumnScoreSelector",
    "DiversitySelector",
    "IFDSelector",
    "KCenterSelector",
    "LengthSelector",
    "PerplexitySelector",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "ScoreSelector",
    "SuperfilteringSelector",
]
