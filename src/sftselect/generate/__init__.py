"""Batched answers to a test set (:func:`generate`), resumable; the answer files it writes."""

from .runner import OUTPUT_FIELDS, GenerateReport, default_template, generate, read_answers, turn_id

__all__ = [
    "OUTPUT_FIELDS",
    "GenerateReport",
    "default_template",
    "generate",
    "read_answers",
    "turn_id",
]
