"""The selectors: length, LLM-judge quality, embedding diversity and coverage, random, any
score, and model scores (DEITA's scorers, reward models)."""

from .dedup import RepresentationFilter
from .deita import DeitaSelector, deita_preset
from .diversity import DiversitySelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .quality import QualitySelector
from .random import RandomSelector
from .reward import RewardSelector
from .score import ColumnScoreSelector, ScoreSelector

__all__ = [
    "ColumnScoreSelector",
    "DeitaSelector",
    "DiversitySelector",
    "KCenterSelector",
    "LengthSelector",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "RewardSelector",
    "ScoreSelector",
    "deita_preset",
]
