"""Which weights exist and how to get them: the registry of released and shipped models
(``pretrained``), their file names without torch (``names``, so the command answers fast),
and the downloader (``download``: URLs, Google Drive, checksums, cache), which datasets reuse.

May import: :mod:`mattingkit.core`, :mod:`mattingkit.io`, :mod:`mattingkit.outputs`,
:mod:`mattingkit.runtime`.
"""
