"""Fixtures shared across test files."""

# The real-browser tests share one Jupyter server and one Chromium (see browser_helpers).
from browser_helpers import (  # noqa: F401
    artifacts,
    browser_folder,
    camera_clip,
    chromium,
    jupyter_server,
    new_page,
)
