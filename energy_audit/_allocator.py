"""Polars' memory allocator setting for this process, made before polars is loaded.

Polars allocates with jemalloc and, when it is loaded, sets jemalloc to hand freed pages back
to the system after half a second (``dirty_decay_ms:500``, polars/__init__.py; pola-rs/polars
#18088, #21829: a small resident size for long sessions), followed by any
``_RJEM_MALLOC_CONF`` already in the environment, which therefore wins. The next large frame
then faults every page in afresh. ``verify`` builds and drops
frames of tens of millions of rows, so on a 2-core machine about a third of its process time
at 1 million returns went to those faults. Keeping freed pages for a minute
(``dirty_decay_ms:60000``; ``muzzy_decay_ms:0`` returns the lazily freed ones at once) was
measured at 1 M returns: ``verify`` 30.3 → 24.5 s, system time 9.6 → 4.4 s, peak memory 6.8 →
8.8 GB (README, benchmarks).

jemalloc reads the variable once, when polars is loaded: the setting takes effect
where ``energy_audit`` is imported first (the ``energy-audit`` command, or a notebook that
imports ``energy_audit`` before ``polars``), and a value already in the environment is kept
(an empty one keeps polars' own default).
Where polars uses another allocator the variable is ignored.
"""

from __future__ import annotations

import os
from typing import Final

ALLOCATOR_ENV: Final = "_RJEM_MALLOC_CONF"
"""Environment variable of polars' jemalloc configuration."""

ALLOCATOR_CONF: Final = "dirty_decay_ms:60000,muzzy_decay_ms:0"
"""jemalloc setting made when none is given: freed pages kept for a minute."""

os.environ.setdefault(ALLOCATOR_ENV, ALLOCATOR_CONF)
