"""A stand-in for Colab's ``google.colab`` package, for the Colab-like test environment.

Only the calls mattingkit makes exist. Each call is appended to the JSON-lines file named by
``MATTINGKIT_COLAB_RECORD`` (when set), which the tests read:
``{"call": "output.enable_custom_widget_manager"}``, ``{"call": "files.upload"}``,
``{"call": "drive.mount", "mountpoint": ...}``; ``runtime.colab_install`` also records
the pip commands it runs (``{"call": "pip", "args": [...]}``) through :func:`record`.
Put ``tests/colab_stub`` on ``PYTHONPATH`` and import ``google.colab`` at kernel start
(as Colab does) to make ``mattingkit.runtime.in_colab()`` true.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from google.colab import drive, files, output  # noqa: F401 -- Colab exposes these


def record(call: str, **details: Any) -> None:
    """Append one call to ``$MATTINGKIT_COLAB_RECORD`` (a no-op when it is not set)."""
    path = os.environ.get("MATTINGKIT_COLAB_RECORD")
    if not path:
        return
    entry = {"call": call, "time": time.time(), **details}
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
