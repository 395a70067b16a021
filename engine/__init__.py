"""Computation layer of Redundancy Explorer.

Everything here is torch / numpy / scipy / networkx (/ open3d / gsplat where a family needs it); nothing here
imports gradio or plotly. Each subpackage is one family of methods; every method registers itself in
:mod:`engine.registry` and returns a result dataclass from :mod:`engine.results`.
"""

__all__ = ["registry", "results", "config"]
