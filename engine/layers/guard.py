"""Sharing one cached model between concurrent requests, and progress that moves inside a forward pass.

The app serves several requests at once, and every request of this family works on the *same* cached model
object (:func:`engine.models.load_model`). Two things in this family change that object while they run:
:func:`engine.layers.drop.dropped` swaps sublayers out (and back), and :func:`engine.layers.scan.hooks`
installs capture hooks that would also fire for someone else's forward pass. So every use of a model here
(scan, perplexity, generation, a drop) holds :func:`model_lock` of that model for the whole
mutate-use-restore; the lock is re-entrant, so a drop may run a perplexity or a re-scan inside it. A request
that waits for the lock keeps calling its ``progress`` callback, so a Stop or the time limit still ends it.

:class:`Ticker` turns the decoder layers' forward calls into progress: a forward pass of a 30-layer model on
a loaded 2-core CPU takes tens of seconds, so a callback once per batch would leave the bar still that long.
Its hooks are installed by :func:`ticking` (removed on exit, even when the callback raises ``Stopped``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from engine.layers.arch import decoder_layers
from engine.models import model_lock, using

__all__ = ["model_lock", "using", "Ticker", "ticking"]

Progress = Callable[[float, str], None]

_TICK_EVERY_S = 0.25  # at most this often a Ticker calls the progress callback


class Ticker:
    """Maps ``total`` steps onto the progress range ``[lo, hi]`` and reports at most every 0.25 s.

    ``tick()`` counts one step (one decoder layer's forward call); ``desc`` is shown with the bar.
    """

    def __init__(self, progress: Progress | None, lo: float, hi: float, total: int, desc: str) -> None:
        self.progress, self.lo, self.hi, self.desc = progress, lo, hi, desc
        self.total = max(1, int(total))
        self.done = 0
        self._last = 0.0

    def tick(self, *_args, **_kwargs) -> None:
        self.done += 1
        now = time.monotonic()
        if self.progress is not None and (now - self._last >= _TICK_EVERY_S or self.done >= self.total):
            self._last = now
            frac = self.lo + (self.hi - self.lo) * min(1.0, self.done / self.total)
            self.progress(frac, self.desc)


@contextmanager
def ticking(model: nn.Module, ticker: Ticker | None) -> Iterator[None]:
    """Call ``ticker.tick()`` before every decoder layer's forward; the hooks are always removed."""
    if ticker is None or ticker.progress is None:
        yield
        return
    handles = [layer.register_forward_pre_hook(lambda m, a: ticker.tick()) for layer in decoder_layers(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
