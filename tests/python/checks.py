"""What the Python client scripts share: failing with a message, and waiting for a condition."""

import sys
import time


def fail(message):
    """Ends the script with `message` on stderr and a non-zero status."""
    print(message, file=sys.stderr)
    sys.exit(1)


def wait(what, check, timeout=60):
    """The first true value `check()` returns; fails naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")
