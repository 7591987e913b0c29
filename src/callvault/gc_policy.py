"""The garbage collector's settings for a serving process (issue 12: set-up rate).

Every SIP call leaves some ninety tracked objects in the SIP core until its
transactions' timers run out (RFC 3261 Timer J: 32 s over UDP), so at a few
hundred set-ups a second the live heap holds close to a million of them, on
top of the 150,000 or more objects start-up leaves (modules, classes, the
portal's routes, SQLAlchemy's mappers). With CPython's default thresholds
(700, 10, 10) the collector then takes 15-20 % of a busy core in the set-up
bench, most of it in full collections that each walk the whole heap and stop
the event loop for up to 200 ms.

``tune_after_startup`` is called once, after start-up and before serving:

- ``gc.freeze()`` moves everything alive then into the permanent generation,
  which no collection walks again. Those objects live as long as the process;
  a reference cycle among them would never be freed, which costs nothing
  after start-up.
- A larger youngest generation (``YOUNG_THRESHOLD``) lets the many short-lived
  objects of each request die by reference count before a collection ever
  sees them, and makes each older collection rarer. A young collection then
  walks at most that many objects (a few milliseconds), far below what
  capture's socket buffers absorb.

Nothing else relies on the collector's timing: cycles are still collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def tune_after_startup() -> tuple[int, int, int]:
    """Freeze what start-up left and raise the young generation's threshold.

    Returns the thresholds now in force. Calling it again freezes what is alive
    by then too (harmless; meant for once per serving process)."""
    gc.collect()  # start-up's garbage goes now, not into the permanent generation
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    young, middle, old = gc.get_threshold()
    return young, middle, old
