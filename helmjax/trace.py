"""Phase markers for the crash harness: appended to the file named by $HELMJAX_TRACE, otherwise nothing.

A killed process loses nothing already passed to write(), so the harness knows which phase each kill hit.
"""

import os
import time

_PATH = os.environ.get("HELMJAX_TRACE")


def event(what: str):
    if _PATH:
        with open(_PATH, "a") as f:
            f.write(f"{time.time():.6f} {os.getpid()} {what}\n")


def enabled() -> bool:
    """Whether events are recorded: callers skip building costly ones otherwise."""
    return bool(_PATH)
