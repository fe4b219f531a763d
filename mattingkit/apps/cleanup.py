"""Simple matte clean-up: drop specks away from the subject, fill the holes inside it.

Chapter 07. A model that has never seen your scene makes two kinds of obvious mistakes
that no amount of edge refinement fixes: *specks* (a lamp or a reflection keyed as
foreground, away from the subject) and *holes* (a shirt the colour of the wall behind it,
keyed as background). When the footage shows one subject, two classic binary-image
operations repair both (OpenCV, some tens of milliseconds per HD frame on a CPU):

* **drop specks**: the *subject* is the connected region that holds most opaque pixels
  (alpha >= ``threshold``). Regions include their soft edges: pixels count as connected
  down to alpha 0.02 (5 of 255 levels). Every region within ``reach`` of the subject (or of
  a region already kept) belongs to it and is kept, whatever its size; only regions
  farther away are set to 0. ``reach`` is a share of the subject's size (the longer side
  of its bounding box; 0.1 by default, about 100 px for a person 1000 px tall). A model
  often leaves a band of a limb almost or wholly transparent (dark trousers in front of a
  dark hedge): keeping only the largest connected region would cut the leg below it off,
  and a clean-up that removes a limb is worse than none. Fainter, invisible alpha values
  are left as they are.
* **fill holes**: background regions (alpha < ``threshold``) that do not reach the frame's
  border are enclosed by the subject, and become opaque (alpha 1, foreground = the frame's
  colour, which is exact where alpha is 1: ``I = F``).

Both are blunt on purpose, and can still remove or add what they should not:

* a part of the subject cut off by a transparent gap wider than ``reach`` (a hand held
  far out beyond a missing forearm) is dropped as a speck: raise ``reach``;
* a second subject farther than ``reach`` from the first is dropped: turn ``drop_specks``
  off for two people who do not touch;
* a speck within ``reach`` of the subject (a lamp right behind the shoulder) is kept;
* filling also closes *real* gaps that the subject encloses, such as the space between a
  hand on the hip and the body: ``max_hole_area`` (a share of the frame) leaves larger
  holes alone.

Edges, hair and semi-transparent pixels are not changed except where a whole region is
dropped or filled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import torch

__all__ = ["clean_matte", "clean_result"]

#: Alpha above this joins pixels into one region (soft edges belong to their subject).
SUPPORT = 0.02
#: Default reach: regions this close to the subject (a share of its size) are its own.
REACH = 0.1


def _drop_specks(alpha: np.ndarray, threshold: float, reach: float) -> None:
    """Set to 0, in place, every region farther than ``reach`` from the subject."""
    support = (alpha > SUPPORT).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(support, connectivity=8)
    if count <= 2:  # the background and at most one region
        return
    opaque = np.bincount(labels[alpha >= threshold], minlength=count)
    opaque[0] = 0
    if opaque.max() == 0:  # nothing opaque anywhere: the largest soft region
        opaque = stats[:, cv2.CC_STAT_AREA].copy()
        opaque[0] = 0
    subject = int(opaque.argmax())
    size = max(stats[subject, cv2.CC_STAT_WIDTH], stats[subject, cv2.CC_STAT_HEIGHT])
    gap = reach * float(size)
    # Regions whose gap is at most ``gap`` touch once each grows by half of it: the
    # distance of every pixel to the nearest region pixel, thresholded, then connected.
    distance = cv2.distanceTransform(1 - support, cv2.DIST_L2, cv2.DIST_MASK_5)
    _, grown = cv2.connectedComponents((distance <= gap / 2).astype(np.uint8), connectivity=8)
    x, y, w, h = stats[subject, :4]
    inside = labels[y : y + h, x : x + w] == subject  # one of the subject's pixels:
    row, column = np.unravel_index(int(inside.argmax()), inside.shape)
    own = grown[y + row, x + column]
    alpha[(grown != own) & (support == 1)] = 0.0  # alpha at or below SUPPORT is left as it is


def _clean_one(
    alpha: np.ndarray,
    fill_holes: bool,
    drop_specks: bool,
    threshold: float,
    max_hole_area: float | None,
    reach: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Clean one (H, W) float32 matte; return it and the mask of the filled holes."""
    alpha = alpha.copy()
    if drop_specks:
        _drop_specks(alpha, threshold, reach)
    filled = np.zeros(alpha.shape, dtype=bool)
    if fill_holes:
        background = (alpha < threshold).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        limit = np.inf if max_hole_area is None else max_hole_area * alpha.size
        holes = [
            label
            for label in range(1, count)  # label 0: the subject's opaque pixels
            if label not in border and stats[label, cv2.CC_STAT_AREA] <= limit
        ]
        if holes:
            filled = np.isin(labels, holes)
            alpha[filled] = 1.0
    return alpha, filled


def _check(threshold: float, max_hole_area: float | None, reach: float) -> None:
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")
    if max_hole_area is not None and not 0 < max_hole_area <= 1:
        raise ValueError(f"max_hole_area is a share of the frame in (0, 1], got {max_hole_area}")
    if not reach >= 0:
        raise ValueError(f"reach is a share of the subject's size, at least 0, got {reach}")


def _clean(
    pha: torch.Tensor,
    fill_holes: bool,
    drop_specks: bool,
    threshold: float,
    max_hole_area: float | None,
    reach: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check(threshold, max_hole_area, reach)
    if pha.ndim not in (3, 4) or pha.shape[-3] != 1:
        raise ValueError(f"pha must be (1, H, W) or (B, 1, H, W), got {tuple(pha.shape)}")
    batch = pha.reshape(-1, *pha.shape[-2:]).detach().float().cpu().numpy()
    cleaned, filled = zip(
        *(_clean_one(a, fill_holes, drop_specks, threshold, max_hole_area, reach) for a in batch)
    )
    out = torch.from_numpy(np.stack(cleaned)).reshape(pha.shape).to(pha.device, pha.dtype)
    mask = torch.from_numpy(np.stack(filled)).reshape(pha.shape).to(pha.device)
    return out, mask


def clean_matte(
    pha: torch.Tensor,
    *,
    fill_holes: bool = True,
    drop_specks: bool = True,
    threshold: float = 0.5,
    max_hole_area: float | None = None,
    reach: float = REACH,
) -> torch.Tensor:
    """A cleaned copy of an alpha matte ``(1, H, W)`` or ``(B, 1, H, W)``. Chapter 07.

    Args:
        pha: alpha in [0, 1] (any float dtype, any device; the result matches).
        fill_holes: make enclosed background regions opaque (see the module doc).
        drop_specks: drop every region farther than ``reach`` from the subject (the region
            holding most opaque pixels); regions within ``reach`` are the subject's own.
        threshold: alpha from which a pixel counts as opaque subject.
        max_hole_area: fill only holes up to this share of the frame (None: all of them).
        reach: the widest gap, as a share of the subject's size (the longer side of its
            bounding box), across which a region still belongs to the subject.
    """
    return _clean(pha, fill_holes, drop_specks, threshold, max_hole_area, reach)[0]


def clean_result(result: Any, **options: Any) -> Any:
    """A :class:`mattingkit.apps.inference.MatteResult` with a cleaned matte. Chapter 07.

    ``options`` are those of :func:`clean_matte`. In filled holes the foreground becomes the
    frame's own colour (exact where alpha is 1); elsewhere it is unchanged.
    """
    pha, filled = _clean(
        result.pha,
        options.pop("fill_holes", True),
        options.pop("drop_specks", True),
        options.pop("threshold", 0.5),
        options.pop("max_hole_area", None),
        options.pop("reach", REACH),
    )
    if options:
        raise TypeError(f"unknown clean-up option(s) {sorted(options)}")
    fgr = torch.where(filled, result.src.to(result.fgr), result.fgr)
    return dataclasses.replace(result, pha=pha, fgr=fgr)
