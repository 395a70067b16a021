"""Information flow through attention (Abnar & Zuidema 2020): rollout, attention flow, entropy, relays.

- :mod:`engine.flow.graph`: the methods on attention arrays (numpy, scipy, networkx).
- :mod:`engine.flow.run`: run them on the shipped scene models or hub vision models for one image.
"""

METHOD_MODULES = ("graph",)
