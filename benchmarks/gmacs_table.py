"""Reproduce the GMac column of the paper's Table 3 with mattingkit.speed.profile.

Every row builds mattingkit's ``MattingRefine`` with the paper's speed-test settings
(HD: backbone_scale 1/4, 80,000 refined pixels; 4K: 1/8, 320,000; sampling mode without
oversampling prevention) and counts the multiply-accumulates of one forward pass with
``torch.utils.flop_counter`` on the ``meta`` device (shapes only: it takes seconds and no
memory, even for 4K ResNet-101).

Usage (from the repository root)::

    python benchmarks/gmacs_table.py
"""

from __future__ import annotations

import torch

from mattingkit.core.paper import RESOLUTIONS, TABLE3
from mattingkit.speed.profile import gmacs_by_module, speed_test_model


def main() -> list[tuple[str, str, float, dict[str, float]]]:
    """Print the table; return its rows as (backbone, resolution, paper GMac, parts)."""
    rows = []
    header = (
        f"{'backbone':<12} {'res':<3} {'paper':>6} {'ours':>7} {'diff':>7}   "
        f"{'backbone':>8} {'aspp':>6} {'decoder':>7} {'refiner':>7}"
    )
    print(header)
    print("-" * len(header))
    for (backbone, name), (_, paper) in TABLE3.items():  # the one copy of the paper's table
        resolution = name.upper()
        with torch.device("meta"):  # no weights needed to count operations
            model = speed_test_model(backbone, resolution)
        parts = gmacs_by_module(model, RESOLUTIONS[name].size)
        ours = parts["total"]
        rows.append((backbone, resolution, paper, parts))
        print(
            f"{backbone:<12} {resolution:<3} {paper:>6.1f} {ours:>7.2f} {100 * (ours - paper) / paper:>+6.2f}%   "
            f"{parts['backbone']:>8.2f} {parts['aspp']:>6.2f} {parts['decoder']:>7.2f} {parts['refiner']:>7.2f}"
        )
    print("GMac = multiply-accumulates of convolutions and matrix products, in billions.")
    return rows


if __name__ == "__main__":
    main()
