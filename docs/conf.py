"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html`` (CI runs it)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sftselect import __version__  # noqa: E402

project = "sftselect"
author = "sftselect developers"
copyright = "2026, sftselect developers"
version = release = __version__

extensions = [
    "myst_nb",  # Markdown pages (it loads myst_parser) and the notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False
# Optional dependencies are imported lazily by the library; nothing to mock.
nitpicky = False

# The notebooks of examples/ (committed without outputs) are copied into notebooks/
# (ignored by git) at each build. With SFTSELECT_DOCS_NOTEBOOKS=execute (.ci/run sets it)
# they run top to bottom in their smoke mode while the site is built, and the pages show
# their outputs (numbers, figures, notebook 3's comparison report); a cell that fails
# fails the build. Otherwise they are shown as code only.
_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
shutil.rmtree(_NOTEBOOKS, ignore_errors=True)
_NOTEBOOKS.mkdir()
for _nb in sorted((ROOT / "examples").glob("*.ipynb")):
    shutil.copyfile(_nb, _NOTEBOOKS / _nb.name)
nb_execution_mode = "force" if os.environ.get("SFTSELECT_DOCS_NOTEBOOKS") == "execute" else "off"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_show_tb = True

html_theme = "furo"
html_title = f"sftselect {release}"
