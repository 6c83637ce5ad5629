"""Scorers: one number per row (length units here; LLM ratings in later modules)."""

from .units import Characters, HFTokens, LengthUnit, NltkWords, TiktokenTokens, Words, resolve_unit

__all__ = [
    "Characters",
    "HFTokens",
    "LengthUnit",
    "NltkWords",
    "TiktokenTokens",
    "Words",
    "resolve_unit",
]
