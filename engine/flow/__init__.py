"""Information flow through attention (Abnar & Zuidema 2020): rollout, attention flow, entropy, relays.

- :mod:`engine.flow.graph`: the methods on attention arrays (numpy, scipy, networkx), registered as family
  ``flow`` with role ``graph``, and the family's parameter table ``FLOW_PARAMS``.
- :mod:`engine.flow.run`: run them on the shipped scene models or hub vision models for one image (the forward
  pass and the graphs cached by input fingerprint).
- :mod:`engine.flow.report`: one graph as labelled nodes, weighted edges and entropy (the CLI's JSON, the tab's
  download).
- :mod:`engine.flow.compare`: two or more methods on the same image: importance, rank agreement, time.
"""

METHOD_MODULES = ("graph",)
