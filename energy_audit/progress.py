"""Progress of long work: the optional callback that long library calls report to.

Library functions are quiet. A long one (:func:`energy_audit.synthetic.write_city`,
:func:`energy_audit.verify.run.verify`, :func:`energy_audit.demo.run_demo`) takes an optional
``progress`` callable and calls it as ``progress(stage, done, total)``: ``stage`` a short stable
key naming the step (``synth_returns``, ``verify``…, listed in each function's documentation),
``done`` and ``total`` counts of that step's units [items] (``total`` 0 when the step has no
count). The command line turns the calls into a progress bar on a terminal and into one line
per stage elsewhere; in Jupyter, ``progress=print`` shows them.

Examples
--------
>>> seen = []
>>> report = lambda stage, done, total: seen.append((stage, done, total))
>>> report("synth_files", 3, 11)
>>> seen
[('synth_files', 3, 11)]
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "quiet"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called at the start of a step and as its units are done."""


def quiet(stage: str, done: int, total: int) -> None:
    """Report nothing: the default ``progress`` of the library's long calls."""
