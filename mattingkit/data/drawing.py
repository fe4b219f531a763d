"""The drawing code behind :mod:`mattingkit.data.synthetic` (private: use that module).

Backgrounds (crops of real photographs shipped inside installed packages, procedural walls,
gradients, blurred rooms) and subjects (people with hair strands, arms, holes and veils, or
generic blobs) drawn with OpenCV as premultiplied colour layers stacked with the *over*
operator, so alpha and foreground colour stay consistent where edges are soft. Every random
choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

__all__ = ["make_background", "make_foreground", "photo_sources"]

Size = tuple[int, int]

_AA = cv2.LINE_AA
_SHIFT = 4  # cv2 drawing with sub-pixel coordinates: integer coordinates are x * 2**_SHIFT
_ONE = float(1 << _SHIFT)


# --------------------------------------------------------------------------------------
# Photo sources: real photographs that ship inside installed Python packages.
# --------------------------------------------------------------------------------------

# (name, package, path inside the package, uses) -- "bg" backgrounds, "tex" foreground textures
# (clothes, objects: real photographic texture rather than drawn patterns).
_PHOTO_CATALOGUE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # All public domain or CC0 (see assets/samples/README.md).
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", ("tex",)),
    ("coffee", "skimage", "data/coffee.png", ("bg", "tex")),
    ("chelsea", "skimage", "data/chelsea.png", ("bg", "tex")),
    ("rocket", "skimage", "data/rocket.jpg", ("bg",)),
    ("brick", "skimage", "data/brick.png", ("bg", "tex")),
    ("grass", "skimage", "data/grass.png", ("bg", "tex")),
    ("gravel", "skimage", "data/gravel.png", ("bg", "tex")),
    ("motorcycle", "skimage", "data/motorcycle_left.png", ("bg",)),
    ("camera", "skimage", "data/camera.png", ("bg",)),
    ("astronaut", "skimage", "data/astronaut.png", ("tex",)),
    ("ihc", "skimage", "data/ihc.png", ("tex",)),
)


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (fast, no side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def _photos() -> dict[str, dict[str, np.ndarray]]:
    """Decode every available photo once per process: ``{"bg": {...}, "tex": {...}}``.

    Each image is uint8 RGB (H, W, 3); grey pictures are stacked to three channels and
    tinted later. Missing packages or unreadable files are skipped silently: the
    generator then falls back to procedural textures.
    """
    out: dict[str, dict[str, np.ndarray]] = {"bg": {}, "tex": {}}
    for name, package, rel, uses in _PHOTO_CATALOGUE:
        root = _package_dir(package)
        if root is None or not (root / rel).is_file():
            continue
        image = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if image is None:
            continue
        for use in uses:
            out[use][name] = np.ascontiguousarray(image[:, :, ::-1])
    return out


def photo_sources() -> tuple[str, ...]:
    """Names of the real photographs found in installed packages (sorted).

    Chapter 01. Samples are bit-identical across machines that list the same sources.
    """
    photos = _photos()
    return tuple(sorted({*photos["bg"], *photos["tex"]}))


# --------------------------------------------------------------------------------------
# Textures (float32 (H, W, 3) in [0, 1] unless said otherwise).
# --------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid resized with bicubic interpolation."""
    gh = max(2, round(cells * h / max(h, w)) + 1)
    gw = max(2, round(cells * w / max(h, w)) + 1)
    grid = rng.random((gh, gw, channels) if channels > 1 else (gh, gw), dtype=np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _fractal_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 3) -> np.ndarray:
    """Sum of value-noise octaves (coarse to fine), normalised to [0, 1]. Shape (H, W)."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    cells = int(rng.integers(2, 6))
    for octave in range(octaves):
        amplitude = 0.5**octave
        out += amplitude * _noise(rng, h, w, cells * 2**octave)
        total += amplitude
    return out / total


def _random_color(rng: np.random.Generator, saturation: float = 1.0) -> np.ndarray:
    """A random RGB colour; ``saturation`` < 1 pulls it towards grey."""
    color = rng.random(3, dtype=np.float32)
    grey = color.mean()
    return (grey + saturation * (color - grey)).astype(np.float32)


def _procedural_texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """A cloth- or wall-like texture around the colour ``base`` (3,): noise, stripes or plaid."""
    kind = rng.integers(4)
    shade = _fractal_noise(rng, h, w)
    if kind == 0:  # plain with soft shading
        pattern = 0.75 + 0.5 * shade
        tex = base[None, None, :] * pattern[:, :, None]
    elif kind in (1, 2):  # stripes (kind 1) or plaid (kind 2) in a second colour
        other = _random_color(rng)
        period = rng.uniform(0.03, 0.15) * max(h, w)
        angle = rng.uniform(0, math.pi)
        ys, xs = np.ogrid[:h, :w]
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
        mix = (np.sin(phase) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        if kind == 2:
            phase2 = (-xs * math.sin(angle) + ys * math.cos(angle)) * (2 * math.pi / period)
            mix = np.maximum(mix, (np.sin(phase2) > 0.3).astype(np.float32) * 0.6)
        mix = cv2.GaussianBlur(mix, (0, 0), 0.6)
        tex = base[None, None, :] * (1 - mix[:, :, None]) + other[None, None, :] * mix[:, :, None]
        tex = tex * (0.85 + 0.3 * shade[:, :, None])
    else:  # mottled, per-channel noise
        colored = _noise(rng, h, w, int(rng.integers(6, 24)), channels=3)
        tex = base[None, None, :] * (0.7 + 0.6 * colored) * (0.85 + 0.3 * shade[:, :, None])
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


def _photo_crop(
    rng: np.random.Generator, image: np.ndarray, h: int, w: int, min_frac: float = 0.35
) -> np.ndarray:
    """A random crop of a uint8 photo, resized to (h, w), randomly flipped: uint8 (H, W, 3)."""
    ih, iw = image.shape[:2]
    aspect = w / h
    frac = rng.uniform(min_frac, 1.0)
    ch = min(ih, iw / aspect) * frac
    cw = ch * aspect
    y0 = rng.uniform(0, ih - ch)
    x0 = rng.uniform(0, iw - cw)
    y1, x1 = max(int(y0 + ch), int(y0) + 2), max(int(x0 + cw), int(x0) + 2)
    crop = image[int(y0) : y1, int(x0) : x1]
    crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _color_shift_lut(rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A (1, 256, 3) uint8 lookup table: per-channel gain, brightness and gamma."""
    x = np.arange(256, dtype=np.float32)[:, None] / 255.0
    gain = 1.0 + strength * rng.uniform(-0.2, 0.2, size=3).astype(np.float32)
    offset = strength * rng.uniform(-0.08, 0.08)
    gamma = math.exp(strength * rng.uniform(-0.3, 0.3))
    y = np.clip(x**gamma * gain + offset, 0.0, 1.0)
    return np.round(y * 255).astype(np.uint8)[None, :, :]


def _tinted_photo(rng: np.random.Generator, image: np.ndarray, h: int, w: int) -> np.ndarray:
    """A photo crop with a random colour shift, float32 (H, W, 3); grey photos get tinted."""
    crop = _photo_crop(rng, image, h, w)
    crop = cv2.LUT(crop, _color_shift_lut(rng))
    out = crop.astype(np.float32) * (1.0 / 255.0)
    if np.array_equal(image[0, :, 0], image[0, :, 1]):  # a grey picture: give it a colour
        out = out * (0.4 + 0.8 * _random_color(rng, 0.6))[None, None, :]
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------------------
# Backgrounds.
# --------------------------------------------------------------------------------------


def _gradient_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c0, c1 = _random_color(rng, 0.7), _random_color(rng, 0.7)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    t = xs / w * math.cos(angle) + ys / h * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    t = t + 0.15 * (_fractal_noise(rng, h, w) - 0.5)
    return np.clip(c0 + (c1 - c0) * t[:, :, None], 0.0, 1.0)


def _room_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A blurred "room": a shaded wall, a floor line, windows, frames and furniture boxes."""
    wall = _procedural_texture(rng, h, w, _random_color(rng, 0.4) * 0.6 + 0.3)
    room = wall.copy()
    floor_y = int(rng.uniform(0.6, 1.1) * h)
    if floor_y < h:
        room[floor_y:] = _procedural_texture(rng, h - floor_y, w, _random_color(rng, 0.5) * 0.6)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.uniform(-0.1, 0.9) * w), int(rng.uniform(-0.1, 0.9) * h)
        bw, bh = int(rng.uniform(0.08, 0.45) * w), int(rng.uniform(0.08, 0.5) * h)
        color = tuple(float(c) for c in _random_color(rng, 0.8))
        cv2.rectangle(room, (x0, y0), (x0 + bw, y0 + bh), color, -1)
        if rng.random() < 0.5:  # a frame or window bars
            edge = tuple(float(c) for c in _random_color(rng, 0.3) * 0.5)
            thick = max(1, int(0.01 * max(h, w)))
            cv2.rectangle(room, (x0, y0), (x0 + bw, y0 + bh), edge, thick)
            cv2.line(room, (x0 + bw // 2, y0), (x0 + bw // 2, y0 + bh), edge, thick)
    sigma = rng.uniform(0.5, 4.0) * max(h, w) / 256
    room = cv2.GaussianBlur(room, (0, 0), sigma)
    light = 0.75 + 0.5 * _noise(rng, h, w, 2)
    return np.clip(room * light[:, :, None], 0.0, 1.0)


def make_background(rng: np.random.Generator, size: Size) -> np.ndarray:
    """A clean plate: float32 (H, W, 3) RGB in [0, 1].

    Chapter 01. About 60 % are crops of real photographs (random crop, flip and colour
    shift) when photo sources are installed; the rest are procedural walls, gradients and
    blurred rooms.
    """
    h, w = _check_size(size)
    photos = _photos()["bg"]
    choice = rng.random()
    if photos and choice < 0.6:
        names = sorted(photos)
        image = photos[names[int(rng.integers(len(names)))]]
        out = _tinted_photo(rng, image, h, w)
        if rng.random() < 0.3:  # out-of-focus background
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 3.0) * max(h, w) / 256)
        return out
    if choice < 0.75:
        return _gradient_background(rng, h, w)
    if choice < 0.88:
        return _room_background(rng, h, w)
    return _procedural_texture(rng, h, w, _random_color(rng, 0.7) * 0.8 + 0.1)


# --------------------------------------------------------------------------------------
# Foreground layers, combined with the premultiplied "over" operator.
# --------------------------------------------------------------------------------------


class _Layers:
    """Back-to-front stack of (colour, alpha) layers kept premultiplied.

    ``over(color, alpha)`` puts a layer in front: ``P = a*C + (1-a)*P``, ``A = a + (1-a)*A``.
    The foreground colour is ``P / A`` where ``A > 0``.
    """

    def __init__(self, h: int, w: int) -> None:
        self.premul = np.zeros((h, w, 3), np.float32)
        self.alpha = np.zeros((h, w), np.float32)

    def over(self, color: np.ndarray, alpha: np.ndarray) -> None:
        x, y, bw, bh = cv2.boundingRect((alpha > 0).view(np.uint8))  # only where alpha > 0
        if bw == 0 or bh == 0:
            return
        box = (slice(y, y + bh), slice(x, x + bw))
        a = alpha[box]
        premul, total = self.premul[box], self.alpha[box]
        premul += a[:, :, None] * (color[box] - premul)
        total += a * (1.0 - total)


def _mask(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w), np.uint8)


def _pt(x: float, y: float) -> tuple[int, int]:
    """A sub-pixel point for cv2 drawing with ``shift=_SHIFT``."""
    return (round(x * _ONE), round(y * _ONE))


def _ellipse(mask: np.ndarray, center, axes, angle=0.0, start=0.0, end=360.0, value=255) -> None:
    cv2.ellipse(
        mask,
        _pt(*center),
        (max(1, round(axes[0] * _ONE)), max(1, round(axes[1] * _ONE))),
        angle,
        start,
        end,
        value,
        -1,
        _AA,
        _SHIFT,
    )


def _limb(mask: np.ndarray, points: list[tuple[float, float]], width: float, value=255) -> None:
    """A thick anti-aliased polyline (an arm or a neck) with round joints."""
    thickness = max(1, round(width))
    pts = [tuple(round(c) for c in p) for p in points]
    for p, q in zip(pts[:-1], pts[1:]):
        cv2.line(mask, p, q, value, thickness, _AA)
    for p in pts:
        cv2.circle(mask, p, max(1, thickness // 2), value, -1, _AA)


def _strands(
    rng: np.random.Generator,
    h: int,
    w: int,
    roots: np.ndarray,
    normals: np.ndarray,
    length: float,
    curl: float,
    gravity: float,
    groups: int = 6,
) -> np.ndarray:
    """Many thin hair strands as fractional alpha, float32 (H, W) in [0, 1].

    ``roots`` (N, 2) are start points and ``normals`` (N,) the outward angles. Each strand
    is a random walk of 12 segments bent by ``curl`` and pulled down by ``gravity``; some
    are long "flyaways". Strands are drawn at twice the resolution and area-averaged down,
    so a 1-px line there covers half a pixel here: real hair is thinner than a pixel, and
    its alpha is the share of the pixel it covers. Each group of strands gets its own
    opacity (and some groups are twice as thick), and groups combine as independent
    coverage, ``a = 1 - prod(1 - a_g)``: where strands cross, the hair thickens smoothly
    towards opaque instead of clipping, which is what gives a hair outline its soft band.
    """
    n = len(roots)
    steps = 12
    lengths = length * rng.uniform(0.3, 1.0, n)
    flyaway = rng.random(n) < 0.12
    lengths[flyaway] *= rng.uniform(1.5, 3.0, int(flyaway.sum()))
    turns = rng.normal(0.0, curl, (n, steps)).cumsum(axis=1)
    angles = normals[:, None] + rng.normal(0.0, 0.35, (n, 1)) + turns
    dx, dy = np.cos(angles), np.sin(angles)
    t = np.linspace(0.0, 1.0, steps)[None, :]
    dy = dy + gravity * t  # strands droop as they grow
    norm = np.sqrt(dx**2 + dy**2) + 1e-6
    seg = (lengths / steps)[:, None]
    xs = roots[:, :1] + np.cumsum(dx / norm * seg, axis=1)
    ys = roots[:, 1:] + np.cumsum(dy / norm * seg, axis=1)
    pts = np.stack(
        [np.concatenate([roots[:, :1], xs], 1), np.concatenate([roots[:, 1:], ys], 1)], -1
    )
    out = np.zeros((h, w), np.float32)
    if n == 0:
        return out
    # Draw only inside the strands' bounding box (in whole pixels), at twice the resolution.
    x0 = int(np.clip(math.floor(pts[..., 0].min()) - 1, 0, w))
    y0 = int(np.clip(math.floor(pts[..., 1].min()) - 1, 0, h))
    x1 = int(np.clip(math.ceil(pts[..., 0].max()) + 2, 0, w))
    y1 = int(np.clip(math.ceil(pts[..., 1].max()) + 2, 0, h))
    if x1 <= x0 or y1 <= y0:
        return out
    fine = np.round((pts - np.array([x0, y0])) * (2 * _ONE)).astype(np.int32)
    transparency = np.ones((y1 - y0, x1 - x0), np.float32)
    group_of = rng.integers(groups, size=n)
    for g in range(groups):
        members = [fine[i].reshape(-1, 1, 2) for i in np.flatnonzero(group_of == g)]
        strength = rng.uniform(0.3, 1.0)
        thickness = 2 if rng.random() < 0.3 else 1
        if not members:
            continue
        canvas = np.zeros((2 * (y1 - y0), 2 * (x1 - x0)), np.uint8)
        cv2.polylines(canvas, members, False, 255, thickness, _AA, _SHIFT)
        cover = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        transparency *= 1.0 - cover.astype(np.float32) * (strength / 255.0)
    out[y0:y1, x0:x1] = 1.0 - transparency
    return out


def _to_alpha(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) * (1.0 / 255.0)


def _texture_for(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """Clothes / object texture: a tinted real photo crop (55 %) or a procedural pattern."""
    photos = _photos()["tex"]
    if photos and rng.random() < 0.55:
        names = sorted(photos)
        photo = _tinted_photo(rng, photos[names[int(rng.integers(len(names)))]], h, w)
        return np.clip(0.5 * photo + 0.5 * photo * base[None, None, :] * 1.6, 0.0, 1.0)
    return _procedural_texture(rng, h, w, base)


_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.89, 0.67, 0.53], [0.78, 0.57, 0.44], [0.58, 0.40, 0.29],
     [0.40, 0.26, 0.18], [0.93, 0.75, 0.62]],
    np.float32,
)  # fmt: skip
_HAIR_COLORS = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.45, 0.30, 0.15], [0.85, 0.70, 0.45],
     [0.55, 0.20, 0.10], [0.75, 0.75, 0.75], [0.50, 0.20, 0.60]],
    np.float32,
)  # fmt: skip


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(color + rng.normal(0.0, amount, 3).astype(np.float32), 0.0, 1.0)


def _shaded(rng: np.random.Generator, h: int, w: int, color: np.ndarray, amount=0.25) -> np.ndarray:
    """A flat colour with soft low-frequency shading, float32 (H, W, 3)."""
    shade = 1.0 - amount / 2 + amount * _noise(rng, h, w, 3)
    return np.clip(color[None, None, :] * shade[:, :, None], 0.0, 1.0)


# Faces inside the portrait photographs: (centre x, centre y, half width, half height) in px.
_FACE_BOXES = {"grace_hopper": (262.0, 245.0, 88.0, 100.0), "astronaut": (236.0, 114.0, 42.0, 56.0)}


def _paste_face(
    canvas: np.ndarray,
    photo: np.ndarray,
    box: tuple[float, float, float, float],
    center: tuple[float, float],
    rh: float,
    tilt: float,
    skin: np.ndarray,
) -> None:
    """Resize the face ``box`` of ``photo`` onto the head at ``center`` (in place).

    The face is scaled to the head ellipse (half axes 0.82 rh x rh), turned by ``tilt`` and
    tinted so its mean colour becomes ``skin``; the head's alpha mask crops it later.
    """
    fx, fy, fax, fay = box
    crop = photo[max(0, int(fy - fay)) : int(fy + fay), max(0, int(fx - fax)) : int(fx + fax)]
    bw, bh = max(2, round(2 * 0.82 * rh)), max(2, round(2 * rh))
    face = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    cheeks = face[bh // 4 : 3 * bh // 4, bw // 4 : 3 * bw // 4].reshape(-1, 3).mean(0)
    gain = np.clip(skin / np.maximum(cheeks, 1e-3), 0.5, 2.0)
    face = np.clip(face * gain, 0.0, 1.0)
    if abs(tilt) > 0.5:
        rotation = cv2.getRotationMatrix2D((bw / 2, bh / 2), -tilt, 1.0)
        face = cv2.warpAffine(face, rotation, (bw, bh), borderMode=cv2.BORDER_REFLECT)
    x0, y0 = round(center[0] - bw / 2), round(center[1] - bh / 2)
    h, w = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + bw), min(h, y0 + bh)
    if cx1 > cx0 and cy1 > cy0:
        canvas[cy0:cy1, cx0:cx1] = face[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


def _draw_face(canvas: np.ndarray, on_head, rh: float, tilt: float, skin: np.ndarray) -> None:
    """Two eyes and a smile drawn into the skin texture (in place)."""
    eye_dark = tuple(float(c) for c in skin * 0.25)
    for side in (-1.0, 1.0):
        px, py = on_head(0.33 * rh * side, 0.05 * rh)
        axes = (max(1, round(0.12 * rh)), max(1, round(0.07 * rh)))
        cv2.ellipse(canvas, (round(px), round(py)), axes, tilt, 0, 360, eye_dark, -1)
    mx, my = on_head(0, 0.45 * rh)
    axes = (max(1, round(0.22 * rh)), max(1, round(0.06 * rh)))
    lip = tuple(float(c) for c in skin * 0.55)
    cv2.ellipse(canvas, (round(mx), round(my)), axes, tilt, 0, 180, lip, max(1, round(0.05 * rh)))


def _draw_person(
    rng: np.random.Generator, layers: _Layers, h: int, w: int, clothes: np.ndarray
) -> None:
    """Stack the layers of a person onto ``layers``: head and shoulders, or the whole body.

    Back to front: long hair, legs and shoes (whole body), torso, arms, neck and head
    (sometimes with glasses), hair cap with strands, sometimes a glass held in a hand and a
    sheer scarf. An arm resting on the hip leaves a hole (background seen between arm and
    body), and so does the gap between the legs.
    """
    whole_body = rng.random() < 0.4
    if whole_body:  # a standing person about 7.5 heads tall, feet near the bottom
        rh = h * rng.uniform(0.045, 0.065)
        cy = h * rng.uniform(0.08, 0.18)
    else:
        rh = 0.12 * h * rng.uniform(0.55, 1.15)  # head radius
        cy = h * rng.uniform(0.18, 0.45)
    cx = w * rng.uniform(0.3, 0.7)
    tilt = rng.uniform(-15, 15)
    lean = rng.uniform(-0.4, 0.4) * rh
    shoulder_y = cy + 1.5 * rh
    shoulder_w = rh * rng.uniform(1.7, 2.4)
    skin = _jitter(rng, _SKIN_TONES[rng.integers(len(_SKIN_TONES))], 0.03)
    hair_color = _jitter(rng, _HAIR_COLORS[rng.integers(len(_HAIR_COLORS))], 0.03)
    hair_style = rng.choice(["short", "long", "curly", "bald"], p=[0.35, 0.35, 0.2, 0.1])
    hair_tex = _shaded(rng, h, w, hair_color, 0.4)

    rad = math.radians(tilt)

    def on_head(dx: float, dy: float) -> tuple[float, float]:
        """A point given relative to the upright head, turned with the head's tilt."""
        return (
            cx + dx * math.cos(rad) - dy * math.sin(rad),
            cy + dx * math.sin(rad) + dy * math.cos(rad),
        )

    # Hair behind the head (seen around the face), falling behind the shoulders if long.
    top = rng.uniform(1.0, 1.12)
    if hair_style != "bald":
        back = _mask(h, w)
        _ellipse(back, on_head(0, -0.1 * rh), (0.98 * rh * top, 1.08 * rh * top), tilt)
        if hair_style == "long":
            drop = rh * rng.uniform(2.0, 3.5)
            poly = np.array(
                [_pt(cx - 1.0 * rh, cy - 0.1 * rh), _pt(cx - 1.3 * rh + lean, cy + drop),
                 _pt(cx + 1.3 * rh + lean, cy + drop), _pt(cx + 1.0 * rh, cy - 0.1 * rh)],
                np.int32,
            )  # fmt: skip
            cv2.fillPoly(back, [poly], 255, _AA, _SHIFT)
        layers.over(hair_tex, _to_alpha(back))

    tx = cx + lean
    waist = shoulder_w * rng.uniform(0.75, 1.05)
    if whole_body:
        hip_y = shoulder_y + rng.uniform(3.6, 4.2) * rh
        bottom = hip_y + 0.3 * rh
        _draw_legs(rng, layers, h, w, tx, hip_y, waist, rh, skin)
    elif rng.random() < 0.85:
        bottom = max(h * 1.05, shoulder_y + 5 * rh)
    else:
        bottom = shoulder_y + 5 * rh

    # Torso: rounded shoulders plus a trunk down to the hips (or past the bottom of the frame).
    torso = _mask(h, w)
    _ellipse(torso, (tx, shoulder_y + 0.7 * rh), (shoulder_w, 0.85 * rh))
    poly = np.array(
        [_pt(tx - shoulder_w, shoulder_y + 0.7 * rh), _pt(tx - waist, bottom),
         _pt(tx + waist, bottom), _pt(tx + shoulder_w, shoulder_y + 0.7 * rh)],
        np.int32,
    )  # fmt: skip
    cv2.fillPoly(torso, [poly], 255, _AA, _SHIFT)
    clothes_tex = _texture_for(rng, h, w, clothes)
    layers.over(clothes_tex, _to_alpha(torso))

    # Arms: down (a gap beside the body), akimbo (an enclosed hole), raised, or hidden.
    sleeves = rng.random() < 0.6
    arm_tex = clothes_tex if sleeves else _shaded(rng, h, w, skin)
    arms = _mask(h, w)
    hands = _mask(h, w)
    hand_points = []
    arm_w = 0.55 * rh * rng.uniform(0.8, 1.2)
    for side in (-1.0, 1.0):
        pose = rng.choice(["down", "akimbo", "raised", "none"], p=[0.35, 0.35, 0.15, 0.15])
        sx, sy = tx + side * (shoulder_w - 0.35 * rh), shoulder_y + 0.6 * rh
        if pose == "none":
            continue
        if pose == "down":
            spread = rng.uniform(0.3, 0.9) * rh
            elbow = (sx + side * spread, sy + 2.6 * rh)
            hand = (sx + side * spread * rng.uniform(0.8, 1.6), sy + 5.0 * rh)
        elif pose == "akimbo":
            elbow = (sx + side * rng.uniform(1.2, 1.8) * rh, sy + rng.uniform(1.8, 2.6) * rh)
            hand = (tx + side * waist * 0.9, sy + rng.uniform(3.8, 4.6) * rh)
        else:
            elbow = (sx + side * rng.uniform(1.0, 1.6) * rh, sy - rng.uniform(0.0, 0.8) * rh)
            hand = (elbow[0] - side * rng.uniform(0.0, 0.8) * rh, elbow[1] - 2.0 * rh)
        _limb(arms, [(sx, sy), elbow, hand], arm_w)
        cv2.circle(hands, (round(hand[0]), round(hand[1])), max(1, round(0.33 * rh)), 255, -1, _AA)
        if pose != "akimbo":
            hand_points.append(hand)
    layers.over(arm_tex, _to_alpha(arms))
    layers.over(_shaded(rng, h, w, skin), _to_alpha(hands))

    # Neck and head, with a face drawn into the skin colour, sometimes behind glasses.
    head = _mask(h, w)
    _limb(head, [(cx, cy + 0.6 * rh), (cx + 0.5 * lean, shoulder_y + 0.3 * rh)], 0.8 * rh)
    _ellipse(head, (cx, cy), (0.82 * rh, rh), tilt)
    face = _shaded(rng, h, w, skin, 0.2)
    portraits = [name for name in sorted(_FACE_BOXES) if name in _photos()["tex"]]
    if portraits and rng.random() < 0.5:  # a real face from a photograph, tinted to the skin
        name = portraits[int(rng.integers(len(portraits)))]
        _paste_face(face, _photos()["tex"][name], _FACE_BOXES[name], (cx, cy), rh, tilt, skin)
    else:  # a drawn face
        _draw_face(face, on_head, rh, tilt, skin)
    layers.over(face, _to_alpha(head))
    if rng.random() < 0.25:
        _draw_glasses(rng, layers, h, w, on_head, rh, tilt)

    # A fringe in front (a crescent following the forehead), with strands and flyaways
    # growing from the hair's outline.
    if hair_style != "bald":
        cap = _mask(h, w)
        _ellipse(cap, on_head(0, -0.12 * rh), (0.9 * rh * top, 1.0 * rh * top), tilt)
        _ellipse(cap, on_head(0, rng.uniform(0.2, 0.45) * rh), (0.8 * rh, 0.92 * rh), tilt, value=0)
        hair_alpha = _to_alpha(cap)
        n = int(np.clip(rh * (16 if hair_style == "curly" else 12), 80, 1600))
        theta = rng.uniform(math.pi * 0.85, math.pi * 2.15, n)
        radius = rng.uniform(0.8, 1.0, n)
        dx = 0.98 * rh * top * np.cos(theta) * radius
        dy = -0.1 * rh + 1.08 * rh * top * np.sin(theta) * radius
        roots = np.stack(
            [
                cx + dx * math.cos(rad) - dy * math.sin(rad),
                cy + dx * math.sin(rad) + dy * math.cos(rad),
            ],
            axis=1,
        )
        curl, gravity = (0.6, 0.3) if hair_style == "curly" else (0.15, 1.2)
        length = rh * (0.5 if hair_style == "curly" else rng.uniform(0.4, 1.2))
        strands = _strands(rng, h, w, roots, theta + rad, length, curl, gravity)
        hair_alpha = 1.0 - (1.0 - hair_alpha) * (1.0 - strands)
        layers.over(hair_tex, hair_alpha)

    if hand_points and rng.random() < 0.2:
        hand = hand_points[int(rng.integers(len(hand_points)))]
        _draw_held_glass(rng, layers, h, w, hand, rh)
    if rng.random() < 0.35:
        _draw_scarf(rng, layers, h, w, tx, shoulder_y, shoulder_w, rh)


def _draw_legs(
    rng: np.random.Generator,
    layers: _Layers,
    h: int,
    w: int,
    tx: float,
    hip_y: float,
    waist: float,
    rh: float,
    skin: np.ndarray,
) -> None:
    """Two legs from the hips to the feet, with shoes; the gap between them shows the floor."""
    feet_y = min(hip_y + rng.uniform(7.0, 8.5) * rh, h * rng.uniform(0.9, 1.02))
    stance = rng.uniform(0.0, 1.6) * rh
    trousers = _texture_for(rng, h, w, _random_color(rng, rng.uniform(0.2, 0.8)) * 0.7)
    shorts = rng.random() < 0.2
    legs = _mask(h, w)
    shins = _mask(h, w)
    shoes = _mask(h, w)
    knee_y = hip_y + 0.5 * (feet_y - hip_y)
    for side in (-1.0, 1.0):
        hip = (tx + side * waist * 0.5, hip_y - 0.3 * rh)
        knee = (tx + side * (waist * 0.45 + 0.4 * stance), knee_y)
        ankle = (tx + side * (waist * 0.4 + stance), feet_y - 0.35 * rh)
        _limb(legs, [hip, knee], 1.05 * rh)
        _limb(shins if shorts else legs, [knee, ankle], 0.8 * rh)
        toe = ankle[0] + side * rng.uniform(0.0, 0.35) * rh
        _ellipse(shoes, (toe, ankle[1] + 0.12 * rh), (0.55 * rh, 0.3 * rh))
    layers.over(trousers, _to_alpha(legs))
    if shorts:
        layers.over(_shaded(rng, h, w, skin), _to_alpha(shins))
    shoe_color = _random_color(rng, 0.4) * 0.35
    layers.over(_shaded(rng, h, w, shoe_color, 0.3), _to_alpha(shoes))


def _draw_glasses(
    rng: np.random.Generator, layers: _Layers, h: int, w: int, on_head, rh: float, tilt: float
) -> None:
    """Eyeglasses: thin opaque rims and temples (past the head's outline when it turns), and
    tinted lenses that let some of the face through."""
    rims = _mask(h, w)
    lenses = _mask(h, w)
    thick = max(1, round(0.05 * rh))
    axes = (0.27 * rh, 0.2 * rh)
    for side in (-1.0, 1.0):
        center = on_head(0.34 * rh * side, 0.05 * rh)
        _ellipse(lenses, center, axes, tilt)
        cv2.ellipse(
            rims,
            (round(center[0]), round(center[1])),
            (max(1, round(axes[0])), max(1, round(axes[1]))),
            tilt, 0, 360, 255, thick, _AA,
        )  # fmt: skip
        outer = on_head(side * 0.61 * rh, 0.0)
        temple = on_head(side * rng.uniform(0.85, 1.0) * rh, -0.05 * rh)
        cv2.line(rims, _round(outer), _round(temple), 255, thick, _AA)
    bridge = (on_head(-0.08 * rh, 0.0), on_head(0.08 * rh, 0.0))
    cv2.line(rims, _round(bridge[0]), _round(bridge[1]), 255, thick, _AA)
    tint = _jitter(rng, np.array([0.55, 0.6, 0.65], np.float32), 0.15)
    layers.over(_shaded(rng, h, w, tint, 0.5), _to_alpha(lenses) * rng.uniform(0.1, 0.45))
    layers.over(_shaded(rng, h, w, _random_color(rng, 0.5) * 0.3, 0.2), _to_alpha(rims))


def _draw_held_glass(
    rng: np.random.Generator, layers: _Layers, h: int, w: int, hand, rh: float
) -> None:
    """A drinking glass in a hand: a nearly clear body (alpha 0.08-0.3), a stronger rim and a
    highlight stripe, so the background shows through the subject."""
    gw, gh = rng.uniform(0.5, 0.8) * rh, rng.uniform(0.9, 1.4) * rh
    x0, y1 = hand[0] - gw / 2, hand[1] + 0.2 * rh
    corners = [(x0, y1 - gh), (x0 + gw, y1 - gh), (x0 + 0.9 * gw, y1), (x0 + 0.1 * gw, y1)]
    body = _mask(h, w)
    cv2.fillPoly(body, [np.array([_pt(*c) for c in corners], np.int32)], 255, _AA, _SHIFT)
    rim = _mask(h, w)
    cv2.polylines(rim, [np.array([_round(c) for c in corners], np.int32)], True, 255,
                  max(1, round(0.05 * rh)), _AA)  # fmt: skip
    shine = _mask(h, w)
    sx = x0 + rng.uniform(0.2, 0.35) * gw
    cv2.line(shine, _round((sx, y1 - 0.9 * gh)), _round((sx, y1 - 0.2 * gh)), 255,
             max(1, round(0.06 * rh)), _AA)  # fmt: skip
    glass = _jitter(rng, np.array([0.8, 0.85, 0.85], np.float32), 0.05)
    layers.over(_shaded(rng, h, w, glass, 0.3), _to_alpha(body) * rng.uniform(0.08, 0.3))
    layers.over(_shaded(rng, h, w, glass * 0.8, 0.3), _to_alpha(rim) * rng.uniform(0.5, 0.9))
    layers.over(np.ones((h, w, 3), np.float32), _to_alpha(shine) * rng.uniform(0.3, 0.7))


def _draw_scarf(
    rng: np.random.Generator,
    layers: _Layers,
    h: int,
    w: int,
    tx: float,
    shoulder_y: float,
    shoulder_w: float,
    rh: float,
) -> None:
    """A sheer woven scarf over one side of the silhouette, with a fringe of loose threads.

    Its alpha is the weave (threads a few pixels apart with gaps between them) times the
    fabric's opacity, so the background shows through at a fine scale, as through a veil.
    """
    veil = _mask(h, w)
    side = rng.choice([-1.0, 1.0])
    vx = tx + side * shoulder_w * rng.uniform(0.7, 1.3)
    vy = shoulder_y + rng.uniform(-1.5, 1.5) * rh
    axes = (rng.uniform(0.5, 1.2) * rh, rng.uniform(0.8, 2.0) * rh)
    angle = rng.uniform(-30, 30)
    _ellipse(veil, (vx, vy), axes, angle)
    period = rng.uniform(2.5, 6.0)
    turn = math.radians(rng.uniform(0, 180))
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    u = xs * math.cos(turn) + ys * math.sin(turn)
    v = -xs * math.sin(turn) + ys * math.cos(turn)
    warp = 0.5 + 0.5 * np.cos(2 * math.pi * u / period)
    weft = 0.5 + 0.5 * np.cos(2 * math.pi * v / period)
    weave = 1.0 - (1.0 - 0.85 * warp**2) * (1.0 - 0.85 * weft**2)
    soft = cv2.GaussianBlur(_to_alpha(veil), (0, 0), max(0.5, 0.03 * rh))
    alpha = soft * weave * rng.uniform(0.3, 0.85)
    # Loose threads hanging from the lower edge.
    n = int(np.clip(rh * 2, 10, 200))
    phi = rng.uniform(0.2 * math.pi, 0.8 * math.pi, n)  # the lower half of the ellipse
    a = math.radians(angle)
    ex, ey = axes[0] * np.cos(phi), axes[1] * np.sin(phi)
    roots = np.stack([vx + ex * math.cos(a) - ey * math.sin(a),
                      vy + ex * math.sin(a) + ey * math.cos(a)], 1)  # fmt: skip
    fringe = _strands(rng, h, w, roots, np.full(n, math.pi / 2), 0.3 * rh, 0.1, 2.0, groups=3)
    alpha = 1.0 - (1.0 - alpha) * (1.0 - 0.8 * fringe)
    color = _random_color(rng, rng.uniform(0.2, 0.9)) * 0.6 + 0.35
    layers.over(_texture_for(rng, h, w, color), alpha.astype(np.float32))


def _round(point) -> tuple[int, int]:
    return (round(point[0]), round(point[1]))


def _draw_blobs(
    rng: np.random.Generator, layers: _Layers, h: int, w: int, base: np.ndarray
) -> None:
    """Generic objects: smooth random shapes, some with holes, translucency, soft edges or fur."""
    for _ in range(int(rng.integers(1, 4))):
        shape = _mask(h, w)
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        radius = rng.uniform(0.12, 0.35) * min(h, w)
        angles = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
        wobble = np.ones_like(angles)
        for k in range(2, 6):  # a few random harmonics make a smooth organic outline
            wobble += rng.uniform(0.0, 0.25 / k * 2) * np.cos(
                k * angles + rng.uniform(0, 2 * math.pi)
            )
        xs = cx + radius * wobble * np.cos(angles) * rng.uniform(0.6, 1.4)
        ys = cy + radius * wobble * np.sin(angles)
        poly = np.round(np.stack([xs, ys], 1) * _ONE).astype(np.int32)
        cv2.fillPoly(shape, [poly], 255, _AA, _SHIFT)
        if rng.random() < 0.4:  # a hole through the object
            _ellipse(
                shape,
                (cx + rng.uniform(-0.2, 0.2) * radius, cy),
                (0.3 * radius, 0.22 * radius),
                rng.uniform(0, 180),
                value=0,
            )
        alpha = _to_alpha(shape)
        if rng.random() < 0.3:  # soft edge
            alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 0.06 * radius + 0.6))
        if rng.random() < 0.25:  # translucent object
            alpha *= rng.uniform(0.3, 0.85)
        if rng.random() < 0.35:  # fur
            n = int(np.clip(radius * 3, 40, 600))
            theta = rng.uniform(0, 2 * math.pi, n)
            idx = np.round(theta / (2 * math.pi) * 48).astype(int) % 48
            roots = np.stack([xs[idx], ys[idx]], 1) * 0.97 + np.array([cx, cy]) * 0.03
            fur = _strands(rng, h, w, roots, theta, 0.25 * radius, 0.25, 0.2)
            np.maximum(alpha, fur, out=alpha)
        color = base if rng.random() < 0.5 else _random_color(rng)
        layers.over(_texture_for(rng, h, w, color), alpha)


def _motion_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    size = max(3, int(length) | 1)
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, 180)
    c = size // 2
    dx, dy = math.cos(math.radians(angle)) * c, math.sin(math.radians(angle)) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, _AA)
    return kernel / kernel.sum()


def make_foreground(
    rng: np.random.Generator,
    size: Size,
    background: np.ndarray | None = None,
    subject: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A random subject: ``(fgr, pha)`` as float32 (H, W, 3) and (H, W) in [0, 1].

    Chapter 01. About 70 % are people (head, hair strands, torso, arms, sometimes a
    veil), the rest generic blobs. When ``background`` (H, W, 3) is given, about 30 % of
    subjects are dressed in the background's own colour: the hard case for matting.
    Optional defocus and motion blur act on the premultiplied colour and the alpha
    together, so ``fgr`` and ``pha`` stay consistent. Where ``pha == 0`` the colour is the
    clothes texture (any value would do there). ``subject="person"`` or ``"blobs"`` forces
    the kind of subject (the random stream is the same either way).
    """
    h, w = _check_size(size)
    if subject not in (None, "person", "blobs"):
        raise ValueError(f"subject must be None, 'person' or 'blobs', got {subject!r}")
    if background is not None and rng.random() < 0.3:
        base = _jitter(rng, background.reshape(-1, 3).mean(0), 0.05)
    else:
        base = _random_color(rng, rng.uniform(0.3, 1.0)) * 0.85 + 0.05
    layers = _Layers(h, w)
    is_person = rng.random() < 0.7
    if subject is not None:
        is_person = subject == "person"
    if is_person:
        _draw_person(rng, layers, h, w, base)
        if rng.random() < 0.15:
            _draw_blobs(rng, layers, h, w, base)
    else:
        _draw_blobs(rng, layers, h, w, base)

    premul, alpha = layers.premul, layers.alpha
    effect = rng.random()
    if effect < 0.15:  # defocus: the whole subject slightly out of focus
        sigma = rng.uniform(0.5, 1.5) * max(h, w) / 256
        premul, alpha = (
            cv2.GaussianBlur(premul, (0, 0), sigma),
            cv2.GaussianBlur(alpha, (0, 0), sigma),
        )
    elif effect < 0.3:  # motion blur along a random direction
        kernel = _motion_kernel(rng, rng.uniform(3, 15) * max(h, w) / 256)
        premul, alpha = cv2.filter2D(premul, -1, kernel), cv2.filter2D(alpha, -1, kernel)
    return _unpremultiply(premul, alpha, base)


def _unpremultiply(
    premul: np.ndarray, alpha: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour and alpha -> (straight colour ``fgr``, alpha), both float32.

    Blur and warp tails below 1/1024 are invisible (they round to 0 in 8 bits) and are set
    to exactly 0; where alpha is 0 the colour is ``fallback`` (an image or a colour).
    """
    alpha = np.where(alpha < 1.0 / 1024, 0.0, np.minimum(alpha, 1.0)).astype(np.float32)
    covered = (alpha > 0)[:, :, None]
    safe_alpha = np.where(covered, alpha[:, :, None], 1.0)
    fgr = np.where(covered, premul / safe_alpha, np.broadcast_to(fallback, premul.shape))
    return np.clip(fgr, 0.0, 1.0).astype(np.float32), alpha


def _check_size(size: Size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (H, W) of positive integers, got {size!r}") from None
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least (8, 8), got (H, W) = ({h}, {w})")
    return h, w
