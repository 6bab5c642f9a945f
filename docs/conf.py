"""Sphinx configuration for trio_zttp (build: ``python -m sphinx docs docs/_build``)."""

project = "trio_zttp"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
nitpicky = True
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "trio": ("https://trio.readthedocs.io/en/stable", None),
}
autodoc_member_order = "bysource"
html_theme = "alabaster"
