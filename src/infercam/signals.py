"""Which signals infercam may catch: the rule that its Ctrl-C deferral, its SIGTERM handling and a run's stop
request share."""
from __future__ import annotations

import signal
import threading


def catchable(sig: signal.Signals) -> bool:
    """Whether a handler for ``sig`` may be installed here: signals reach the main thread only, and a signal the
    process was started ignoring (SIGINT in a background job of a script: ``cmd &`` in a non-interactive shell)
    stays ignored, as in other programs."""
    return threading.current_thread() is threading.main_thread() and signal.getsignal(sig) is not signal.SIG_IGN
