"""The selectors: length, LLM-judge quality, model scores (IFD, Superfiltering, perplexity,
DEITA's scorers, reward models), embedding diversity and coverage, deduplication filters,
random, any score."""

from .dedup import ExactDedup, MinHashDedup, RepresentationFilter, SemDeDup
from .deita import DeitaSelector, deita_preset
from .diversity import DiversitySelector
from .facility import FacilityLocationSelector
from .ifd import IFDSelector, SuperfilteringSelector
from .kcenter import KCenterSelector
from .length import LengthSelector
from .perplexity import PerplexitySelector
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
    "IFDSelector",
    "KCenterSelector",
    "LengthSelector",
    "MinHashDedup",
    "PerplexitySelector",
    "QualitySelector",
    "RandomSelector",
    "RepresentationFilter",
    "RewardSelector",
    "ScoreSelector",
    "SemDeDup",
    "SuperfilteringSelector",
    "TargetedSelector",
    "deita_preset",
]
