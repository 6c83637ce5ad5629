"""Deduplication filters, each a selector that keeps one row of each duplicate group.

* :class:`ExactDedup` -- identical normalised text (:mod:`.exact`);
* :class:`MinHashDedup` -- near-duplicates by MinHash-LSH on word shingles,
  verified against the true Jaccard similarity (:mod:`.minhash`);
* :class:`SemDeDup` -- semantic duplicates inside K-means clusters of
  embeddings (Abbas et al., 2023, as NeMo Curator implements it; :mod:`.semdedup`);
* :class:`RepresentationFilter` -- DEITA's greedy filter on embedding
  similarity (:mod:`.representation`; ``from sftselect.selectors.dedup import
  RepresentationFilter`` works as before).

Put one in front of another selector: ``Chain(MinHashDedup(), LengthSelector(k=1000))``.
"""

from .exact import ExactDedup
from .minhash import MinHashDedup
from .representation import RepresentationFilter
from .semdedup import SemDeDup

__all__ = ["ExactDedup", "MinHashDedup", "RepresentationFilter", "SemDeDup"]
