"""Stand-in for ``google.colab.files``.

``upload()`` returns ``{name: bytes}`` like Colab's file picker; the files it "picks" are
those named in ``MATTINGKIT_COLAB_UPLOADS`` (paths separated by ``os.pathsep``), or the
list a test put in :data:`PICKED`.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Paths the next ``upload()`` returns (tests may set it directly).
PICKED: list[str] = []


def upload(target_dir: str = "") -> dict[str, bytes]:
    from google.colab import record

    paths = list(PICKED) or [
        p for p in os.environ.get("MATTINGKIT_COLAB_UPLOADS", "").split(os.pathsep) if p
    ]
    result = {Path(p).name: Path(p).read_bytes() for p in paths}
    record("files.upload", names=sorted(result), sizes=[len(v) for v in result.values()])
    return result


def download(filename: str) -> None:
    from google.colab import record

    record("files.download", filename=str(filename))
