"""Side-by-side comparison of selections from one pool, as one self-contained HTML page.

``compare(pool, {"longest": selection, ...})`` returns a :class:`Report`
(``.save(path)``; shown inline in Jupyter); ``sftselect compare POOL SEL...`` is
the same from the command line. The page holds inline SVG charts and a small
script, nothing fetched, so it opens offline; it holds bins and samples, not
every row, so its size does not grow with the pool.
"""

from __future__ import annotations

from .build import Report, compare
from .inputs import Strategy

__all__ = ["Report", "Strategy", "compare"]
