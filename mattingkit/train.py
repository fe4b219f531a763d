"""``python -m mattingkit.train``: the training command. The code lives in :mod:`mattingkit.training`."""

from mattingkit.training.loop import main

if __name__ == "__main__":
    raise SystemExit(main())
