"""Stand-in for ``google.colab.drive``: ``mount`` records the call and makes the folder."""

from __future__ import annotations

import os
from pathlib import Path


def mount(mountpoint: str, force_remount: bool = False, **_: object) -> None:
    from google.colab import record

    folder = os.environ.get("MATTINGKIT_COLAB_DRIVE")  # where the "Drive" really is, in tests
    if folder:
        Path(folder, "MyDrive").mkdir(parents=True, exist_ok=True)
    record("drive.mount", mountpoint=str(mountpoint), force_remount=force_remount)
