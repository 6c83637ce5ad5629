"""The selectors: length, LLM-judge quality, embedding diversity and coverage, random, any
score, deduplication filters, and model scores (DEITA's scorers, reward models)."""

from .dedup import ExactDedup, MinHashDedup, RepresentationFilter, SemDeDup
from .deita import DeitaSelector, deita_preset
from .diversity import DiversitySelector
from .facility import FacilityLocationSelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .quality import QualitySelector
from .random import RandomSelector
from .reward import RewardSelector
from .score import ColumnScoreSelector, ScoreSelector
from .targeted import TargetedSelector

__all__ = [
    "ColumnScoreSelector",
    "DeitaSelector",
    "DiversitySelector",
    "ExactDedup",
    "FacilityLocationSelector",
    "KCenterSelector",
    "LengthSelector",
    "MinHashDedup",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "RewardSelector",
    "ScoreSelector",
    "SemDeDup",
    "TargetedSelector",
    "deita_preset",
]
