"""Transforms that rewrite examples (they return a new Dataset, never mutate)."""

from .refine import RefineResult, extract_better_answer, refine_responses

__all__ = ["RefineResult", "extract_better_answer", "refine_responses"]
