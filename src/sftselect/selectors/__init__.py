"""The selectors: length, random, and selection by any score."""

from .length import LengthSelector
from .random import RandomSelector
from .score import ColumnScoreSelector, ScoreSelector

__all__ = ["ColumnScoreSelector", "LengthSelector", "RandomSelector", "ScoreSelector"]
