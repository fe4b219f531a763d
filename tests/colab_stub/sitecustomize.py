"""In the Colab-like test environment: record every ``python -m pip ...`` a process runs.

``tests/colab_stub`` is on ``PYTHONPATH`` there, so this runs at the start of every Python
process, including the pip that ``mattingkit.runtime.colab_install`` starts: its arguments
go to ``$MATTINGKIT_COLAB_RECORD`` as ``{"call": "pip", "args": [...]}``.
"""

import os
import sys

_argv = list(getattr(sys, "orig_argv", []))
if os.environ.get("MATTINGKIT_COLAB_RECORD") and "-m" in _argv:
    _at = _argv.index("-m")
    if _argv[_at + 1 : _at + 2] == ["pip"]:
        from google.colab import record

        record("pip", args=_argv[_at + 2 :])
