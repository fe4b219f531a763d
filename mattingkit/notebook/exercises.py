"""Check functions for the notebook exercises.

Each ``check_*`` function runs a student's answer on a few cases, prints a friendly
``✓`` or says exactly what is wrong (which case, expected vs got) and returns a
:class:`CheckResult`; it never raises on a wrong answer, so a notebook keeps running.
A ``CheckResult`` is truthy when the answer passed (``if check_x(...):`` and
``assert check_x(...)`` work) but displays nothing as a cell's last value: the printed
✓/✗ line is the feedback, not a stray ``True``/``False`` under it.

**Solutions are skipped by Run All.** A chapter's solution cell is collapsed and starts
with the line ``%%solution`` (:data:`SOLUTION_MAGIC`): importing this module registers
that cell magic, which runs nothing and shows nothing, so Run All prints no answer. A
student who wants the solutions opens the cell (that is asking), deletes the
``%%solution`` line and runs the cell: the solutions then run through the same checks as
the student's answers. :func:`solution_code` gives a cell's code without that line
(``tests/test_solutions.py`` runs every chapter's solutions this way after the chapter).

Layout: shared helpers first (reuse them in new sections), then the solution cells, then
one section per chapter (``# --- Chapter NN ---``). Authors of later chapters append
their section at the end of this file.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

# --- shared helpers -------------------------------------------------------------------------


class CheckResult:
    """The outcome of a check: truthy when it passed, invisible as a cell's output.

    Jupyter displays the value of a cell's last expression; a check is usually that
    expression, and its line is already printed, so ``_ipython_display_`` shows nothing.
    """

    __slots__ = ("ok", "message")

    def __init__(self, ok: bool, message: str) -> None:
        self.ok = ok
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.message}"

    def _ipython_display_(self) -> None:
        """Display nothing: the check printed its ✓/✗ line already."""


def passed(message: str) -> CheckResult:
    """Print a ✓ line and return a passing (truthy) result."""
    print(f"✓ {message}")
    return CheckResult(True, message)


def failed(message: str) -> CheckResult:
    """Print a ✗ line and return a failing (falsy) result."""
    print(f"✗ {message}")
    return CheckResult(False, message)


def answer_required(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Say "not answered yet" for a ``None`` answer instead of checking it.

    On Run All a student's exercise cell still holds ``None``; a check that compared it
    would print the expected value, i.e. give the answer away before it was tried.
    """

    @functools.wraps(check)
    def guarded(answer: Any = None, *args: Any, **kwargs: Any) -> CheckResult:
        if answer is None:
            return failed(f"{check.__name__}: not answered yet (replace None, run the cell again)")
        return check(answer, *args, **kwargs)

    return guarded


def describe(value: Any) -> str:
    """A short description of a value for error messages (shape and dtype for tensors)."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 4:
            return f"tensor {value.flatten().tolist()} of shape {tuple(value.shape)}"
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return repr(value)


def mismatch(
    got: Any, expected: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-4
) -> str | None:
    """None when ``got`` matches the tensor ``expected``; otherwise what differs, in words."""
    if not isinstance(got, torch.Tensor):
        wanted = (
            "a scalar tensor"
            if expected.ndim == 0
            else f"a tensor of shape {tuple(expected.shape)}"
        )
        return f"expected {wanted}, got {describe(got)}"
    if got.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    got = got.detach().to(expected.dtype)
    if torch.isnan(got).any():
        return f"the result contains {int(torch.isnan(got).sum())} NaN value(s)"
    difference = (got - expected).abs()
    tolerance = atol + rtol * expected.abs()
    if bool((difference <= tolerance).all()):
        return None
    if expected.ndim == 0:
        return f"expected {expected.item():.4f}, got {got.item():.4f}"
    worst = int(difference.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
    return (
        f"at index {index} expected {expected.flatten()[worst].item():.4f}, "
        f"got {got.flatten()[worst].item():.4f} "
        f"({int((difference > tolerance).sum())} of {expected.numel()} values differ)"
    )


def call_student(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """Call ``fn``; return (result, None) or (None, a one-line description of the error)."""
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, "the function is not written yet (it raises NotImplementedError)"
    except Exception as error:  # a student's bug: report it instead of crashing the notebook
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return (
            None,
            f"it raised {type(error).__name__}: {error} (line {frame.lineno}: {frame.line})",
        )


def check_against_reference(
    fn: Callable[..., Any],
    reference: Callable[..., torch.Tensor],
    cases: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    name: str,
    atol: float = 1e-5,
) -> CheckResult:
    """Run ``fn`` and ``reference`` on each ``(description, args)`` case and compare."""
    for description, args in cases:
        got, error = call_student(fn, *args)
        if error is None:
            error = mismatch(got, reference(*args), atol=atol)
        if error is not None:
            return failed(f"{name}: on {description}, {error}.")
    cases_text = f"all {len(cases)} cases" if len(cases) > 1 else "its test case"
    return passed(f"{name} is correct on {cases_text}.")


def _random(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# --- solution cells: skipped by Run All, run on request ------------------------------------

#: The first line of every solution cell. Run All skips the cell; delete the line to run it.
SOLUTION_MAGIC = "%%solution"
#: The line after it, telling the student how to run the solutions.
SOLUTION_HINT = (
    "# Run All skips this cell (the %%solution line above). To run the solutions, "
    "delete that line and run the cell."
)


def solution_code(source: str) -> str | None:
    """The code of a solution cell without its ``%%solution`` line; None for any other cell."""
    first, _, rest = source.partition("\n")
    if first.split("#", 1)[0].strip() != SOLUTION_MAGIC:
        return None
    return rest


def skip_solution(line: str, cell: str) -> None:
    """The ``%%solution`` cell magic: the cell's code is not run and nothing is shown."""


def register_solution_magic(shell: Any = None) -> bool:
    """Register ``%%solution`` in ``shell`` (default: the running IPython, if any)."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # plain Python: no cells, nothing to register
            return False
        shell = get_ipython()
    if shell is None:
        return False
    shell.register_magic_function(skip_solution, magic_kind="cell", magic_name="solution")
    return True


register_solution_magic()  # every chapter imports its checks from here, before its exercises


# --- Chapter 01 -----------------------------------------------------------------------------


@answer_required
def check_unknowns_per_pixel(n: int, known_background: bool = False) -> CheckResult:
    """Chapter 01: how many unknowns per pixel does matting have (with/without a plate)?"""
    expected = 4 if known_background else 7
    setting = "with a known background" if known_background else "from a single image"
    if n == expected:
        if known_background:
            return passed(
                "4 unknowns (α and the 3 channels of F) against 3 equations: still one "
                "short, which is why the network has to learn what a person looks like."
            )
        return passed(
            "7 unknowns (α, F's 3 channels, B's 3 channels) against 3 equations "
            "(one per colour channel) — badly under-determined."
        )
    hints = {
        3: "3 is the number of equations (one per colour channel), not of unknowns.",
        7: "with the background known, B's 3 channels are no longer unknown.",
        4: "without a plate, B is unknown too: add its 3 channels.",
        1: "α is only one of the unknowns: the colours F (and B) are unknown as well.",
    }
    hint = hints.get(n, "count α, then each colour channel of F and of B that you do not know.")
    return failed(f"Matting {setting}: {n} is not right. {hint}")


@answer_required
def check_composite(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Chapter 01: ``fn(fgr, pha, bgr)`` must return ``α·F + (1 − α)·B``."""
    from mattingkit.core.matting import composite

    pixel = (
        torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1),
        torch.tensor([0.25]).view(1, 1, 1),
        torch.tensor([0.0, 0.4, 1.0]).view(3, 1, 1),
    )
    cases = [
        ("one pixel, F=(1, 0, 0.5), α=0.25, B=(0, 0.4, 1)", pixel),
        (
            "α = 1 everywhere (should give F)",
            (_random(1, 3, 4, 5), torch.ones(1, 4, 5), _random(2, 3, 4, 5)),
        ),
        (
            "α = 0 everywhere (should give B)",
            (_random(3, 3, 4, 5), torch.zeros(1, 4, 5), _random(4, 3, 4, 5)),
        ),
        (
            "a random batch of 2 images",
            (_random(5, 2, 3, 6, 7), _random(6, 2, 1, 6, 7), _random(7, 2, 3, 6, 7)),
        ),
    ]
    return check_against_reference(fn, composite, cases, name="composite")


@answer_required
def check_triangulation_alpha(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Chapter 01: ``fn(src1, src2, bgr1, bgr2)`` must return the exact alpha (…,1,H,W)."""
    from mattingkit.core.matting import composite

    def case(seed: int, lead: tuple[int, ...], height: int, width: int):
        """Two shots of a random matte over two plates that differ at every pixel."""
        fgr = _random(seed, *lead, 3, height, width)
        pha = _random(seed + 1, *lead, 1, height, width)
        bgr1 = _random(seed + 2, *lead, 3, height, width)
        bgr2 = (bgr1 + 0.5) % 1.0
        return (composite(fgr, pha, bgr1), composite(fgr, pha, bgr2), bgr1, bgr2), pha

    for description, lead, height, width in (
        ("a 4×5 image", (), 4, 5),
        ("a batch of 2 images", (2,), 6, 7),
    ):
        args, truth = case(40 + height, lead, height, width)
        got, error = call_student(fn, *args)
        if error is None:
            error = mismatch(got, truth, atol=1e-4)
        if error is not None:
            return failed(f"triangulation alpha: on {description}, {error}.")
    return passed("your triangulation recovers α exactly, from two plates and no learning at all.")


# --- Chapter 02 -----------------------------------------------------------------------------


@answer_required
def check_residual_roundtrip(
    to_residual: Callable[..., torch.Tensor], to_foreground: Callable[..., torch.Tensor]
) -> CheckResult:
    """Chapter 02: ``to_residual(fgr, src)`` = F − I and ``to_foreground(residual, src)``
    = clamp(I + residual, 0, 1), so that a round trip gives F back."""
    from mattingkit.core.matting import foreground_to_residual, residual_to_foreground

    fgr, src = _random(10, 3, 4, 5), _random(11, 3, 4, 5)
    ok = check_against_reference(
        to_residual, foreground_to_residual, [("random F and I", (fgr, src))], name="to_residual"
    )
    overshoot = torch.tensor([0.9, -0.9, 0.1]).view(3, 1, 1)
    grey = torch.full((3, 1, 1), 0.5)
    ok = ok and check_against_reference(
        to_foreground,
        residual_to_foreground,
        [
            ("a random residual", (fgr - src, src)),
            ("a residual that overshoots [0, 1] (did you clamp?)", (overshoot, grey)),
        ],
        name="to_foreground",
    )
    if not ok:
        return ok
    residual, error = call_student(to_residual, fgr, src)
    back, error = (None, error) if error else call_student(to_foreground, residual, src)
    problem = error or mismatch(back, fgr)
    if problem:
        return failed(f"round trip F → residual → F: {problem}.")
    return passed("round trip F → F − I → F is exact.")


@answer_required
def check_upsampled_foreground(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Chapter 02: ``fn(residual_small, src)`` upsamples the low-resolution residual to
    ``src``'s size (bilinear) and returns ``clamp(src + residual, 0, 1)``."""
    import torch.nn.functional as F

    def reference(residual_small: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        residual = F.interpolate(
            residual_small, size=src.shape[-2:], mode="bilinear", align_corners=False
        )
        return (src + residual).clamp(0, 1)

    cases = [
        (
            "a 4×4 residual and an 8×8 frame",
            (_random(20, 1, 3, 4, 4) - 0.5, _random(21, 1, 3, 8, 8)),
        ),
        (
            "a 3×5 residual and a 12×20 frame",
            (_random(22, 2, 3, 3, 5) - 0.5, _random(23, 2, 3, 12, 20)),
        ),
    ]
    return check_against_reference(fn, reference, cases, name="upsampled foreground", atol=1e-4)


# --- Chapter 05 -----------------------------------------------------------------------------

_LOSS_TERMS = ("alpha_l1", "alpha_gradient_l1", "foreground_l1", "error_mse")


def _loss_cases(term: str) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    true_pha = _random(30, 2, 1, 8, 8)
    true_pha[:, :, :3] = 0  # a transparent band: foreground undefined there
    true_pha[:, :, 6:] = 1
    pred_pha = _random(31, 2, 1, 8, 8)
    if term in ("alpha_l1", "alpha_gradient_l1"):
        step = torch.zeros(1, 1, 6, 6)
        step[..., 3:] = 1
        return [
            ("a random batch of 2 alphas (B, 1, 8, 8)", (pred_pha, true_pha)),
            ("a sharp edge against a blurred one", (step * 0.5 + 0.25, step)),
        ]
    if term == "foreground_l1":
        return [
            (
                "a batch of 2 with α* = 0 in the top 3 rows",
                (_random(32, 2, 3, 8, 8), _random(33, 2, 3, 8, 8), true_pha),
            )
        ]
    return [("a random batch of 2 error maps", (_random(34, 2, 1, 8, 8), pred_pha, true_pha))]


@answer_required
def check_loss(fn: Callable[..., torch.Tensor], term: str = "foreground_l1") -> CheckResult:
    """Chapter 05: compare a loss term written by hand with ``mattingkit.core.losses.<term>``.

    ``term`` is one of ``alpha_l1(pred_pha, true_pha)``,
    ``alpha_gradient_l1(pred_pha, true_pha)``,
    ``foreground_l1(pred_fgr, true_fgr, true_pha)`` or
    ``error_mse(pred_err, pred_pha, true_pha)``; ``fn`` takes the same arguments and
    returns a scalar tensor.
    """
    from mattingkit.core import losses

    if term not in _LOSS_TERMS:
        raise ValueError(f"term must be one of {_LOSS_TERMS}, got {term!r}")
    reference = getattr(losses, term)
    for description, args in _loss_cases(term):
        args = tuple(a.clone() for a in args)
        if term == "error_mse":
            args[1].requires_grad_(True)
        got, error = call_student(fn, *args)
        if error is None and isinstance(got, torch.Tensor) and got.ndim != 0:
            error = f"expected a scalar (a mean over all values), got shape {tuple(got.shape)}"
        expected = reference(*(a.detach() for a in args))
        if error is None:
            error = mismatch(got, expected, atol=1e-5)
        if error is not None and term == "foreground_l1" and isinstance(got, torch.Tensor):
            pred_fgr, true_fgr, true_pha = args
            mask = (true_pha > 0).expand_as(pred_fgr)
            if torch.allclose(got.detach(), (pred_fgr - true_fgr).abs()[mask].mean(), atol=1e-5):
                error += (
                    "; you averaged over the masked pixels only: the official code (and "
                    "mattingkit) multiplies both images by the mask and averages over all pixels"
                )
            elif torch.allclose(got.detach(), (pred_fgr - true_fgr).abs().mean(), atol=1e-5):
                error += "; you forgot the mask α* > 0"
        if error is None and term == "error_mse" and got.requires_grad:
            got.backward()
            if args[1].grad is not None and args[1].grad.abs().sum() > 0:
                error = (
                    "the value is right, but gradients flow into pred_pha: detach the target "
                    "|pred_pha.detach() − true_pha| so this term trains only the error map"
                )
        if error is not None:
            return failed(f"{term}: on {description}, {error}.")
    return passed(f"{term} matches mattingkit.core.losses.{term}.")


# --- Chapter 03 -----------------------------------------------------------------------------


def _meta_resnet_encoder() -> torch.nn.Module:
    """ResNet-50 encoder on the meta device: real layer arithmetic, no weights, no memory."""
    from mattingkit import MattingBase

    with torch.device("meta"):
        return MattingBase("resnet50").backbone


@answer_required
def check_deepest_size(fn: Callable[[int, int], Any]) -> CheckResult:
    """Chapter 03: ``fn(height, width)`` must return the (H, W) of the ResNet's ``out16`` map."""
    encoder = _meta_resnet_encoder()
    for height, width in ((512, 512), (270, 480), (135, 240), (1080, 1920), (17, 33)):
        expected = tuple(encoder(torch.empty(1, 6, height, width, device="meta")).out16.shape[2:])
        got, error = call_student(fn, height, width)
        if error is None and (not isinstance(got, Sequence) or len(got) != 2):
            error = f"expected a pair (H, W), got {describe(got)}"
        if error is None and tuple(int(v) for v in got) != expected:
            error = f"expected {expected}, got {tuple(got)}"
            if tuple(int(v) for v in got) == (height // 16, width // 16):
                error += " (odd sizes round up: a stride-2 layer maps n to ceil(n / 2))"
        if error is not None:
            return failed(f"deepest size for a {height}×{width} input: {error}.")
    return passed("right on all sizes, odd ones included: output stride 16, rounding up.")


@answer_required
def check_conv_parameters(fn: Callable[[int, int, int, bool], Any]) -> CheckResult:
    """Chapter 03: ``fn(in_channels, out_channels, kernel_size, bias)`` = parameters of a Conv2d."""
    cases = (  # not the stem's (6, 64, 7) first: its count would give exercise 2 away
        (42, 24, 3, False),
        (12, 4, 3, True),
        (1280, 256, 1, False),
        (5, 64, 7, False),
    )
    for in_channels, out_channels, kernel_size, bias in cases:
        with torch.device("meta"):
            conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)
        expected = sum(p.numel() for p in conv.parameters())
        got, error = call_student(fn, in_channels, out_channels, kernel_size, bias)
        if error is None and got != expected:
            error = f"expected {expected:,}, got {describe(got)}"
            if bias and got == expected - out_channels:
                error += " (the bias adds one parameter per output channel)"
        if error is not None:
            description = f"Conv2d({in_channels}, {out_channels}, {kernel_size}, bias={bias})"
            return failed(f"conv parameters of {description}: {error}.")
    return passed("conv parameters = out × in × k × k (+ out for the bias).")


@answer_required
def check_split_outputs(fn: Callable[..., Any]) -> CheckResult:
    """Chapter 03: ``fn(raw, src)`` turns (B, 37, H, W) into ``(pha, fgr, err, hid)``."""
    from mattingkit.core.model import split_outputs

    raw = _random(30, 2, 37, 5, 6) * 3 - 1.5
    src = _random(31, 2, 3, 5, 6)
    expected = split_outputs(raw, src)._asdict()  # the library's own split is the reference
    got, error = call_student(fn, raw.clone(), src.clone())
    if error is None and (not isinstance(got, Sequence) or len(got) != 4):
        error = f"expected a tuple (pha, fgr, err, hid), got {describe(got)}"
    if error is None:
        for (name, want), value in zip(expected.items(), got):
            problem = mismatch(value, want)
            if problem is not None:
                error = f"{name}: {problem}"
                break
    if error is not None:
        return failed(f"split_outputs on a random (2, 37, 5, 6) output: {error}.")
    return passed("α, F = clamp(I + residual), error and hidden channels, exactly as MattingBase.")


# --- Chapter 04 -----------------------------------------------------------------------------


@answer_required
def check_patch_count(fn: Callable[[int, int, int], Any]) -> CheckResult:
    """Chapter 04: ``fn(sample_pixels, height, width)`` = 4×4 patches refined in sampling mode."""
    from mattingkit.core.refiner import select_refinement_regions

    cases = ((80_000, 1080, 1920), (320_000, 2160, 3840), (80_000, 256, 256), (1_000, 64, 64))
    for pixels, height, width in cases:
        err = _random(40, 1, 1, height // 4, width // 4)
        selected = select_refinement_regions(
            err, "sampling", pixels, 0.0, prevent_oversampling=False
        )
        expected = int(selected.sum())
        got, error = call_student(fn, pixels, height, width)
        if error is None and got != expected:
            error = f"expected {expected:,}, got {describe(got)}"
            if got == pixels // 16:
                error += " (a small frame has fewer patches than that: cap it)"
        if error is not None:
            return failed(f"patches for {pixels:,} pixels on {width}×{height}: {error}.")
    return passed("k = min(sample_pixels // 16, (H/4)·(W/4)) patches.")


@answer_required
def check_select_worst(fn: Callable[[torch.Tensor, int], Any]) -> CheckResult:
    """Chapter 04: ``fn(err, k)`` marks the k largest errors of each image with 1 (else 0)."""
    from mattingkit.core.refiner import select_refinement_regions

    cases = [
        ("one 6×8 error map, k = 5", (_random(41, 1, 1, 6, 8), 5)),
        ("a batch of 3 error maps, k = 7", (_random(42, 3, 1, 5, 9), 7)),
        ("k = every patch", (_random(43, 1, 1, 4, 4), 16)),
    ]

    def reference(err: torch.Tensor, k: int) -> torch.Tensor:
        return select_refinement_regions(err, "sampling", 16 * k, 0.0, prevent_oversampling=False)

    return check_against_reference(fn, reference, cases, name="select_worst")


@answer_required
def check_macs_per_patch(n: Any) -> CheckResult:
    """Chapter 04: multiply-accumulates of the refiner for ONE 4×4 patch (3×3 kernels)."""
    from mattingkit import MattingRefine
    from mattingkit.speed.profile import gmacs_by_module

    patches = 10
    with torch.device("meta"):
        model = MattingRefine(
            "mobilenetv2", refine_sample_pixels=16 * patches, refine_prevent_oversampling=False
        )
    expected = round(gmacs_by_module(model, (64, 64))["refiner"] * 1e9 / patches)
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return failed(f"expected a number, got {describe(n)}.")
    if n == expected:
        return passed(
            f"{expected:,} MACs per patch: 5,000 patches (HD) cost {5000 * expected / 1e9:.2f} GMac."
        )
    if n == 2 * expected:
        return failed("that is FLOPs (2 per multiply-accumulate); count each multiply-add once.")
    return failed(
        f"{n:,} is not right. For each conv: output pixels × out channels × in channels × 3 × 3; "
        "stage 1 works on 8×8 crops (valid convs: 6×6 then 4×4 outputs), stage 2 on 8×8 again."
    )


# --- Chapter 06 -----------------------------------------------------------------------------


@answer_required
def check_learning_rates(fn: Callable[[str, float], Any]) -> CheckResult:
    """Chapter 06: ``fn(stage, lr_scale)`` returns ``{submodule: learning rate}`` for a stage.

    The reference is :data:`mattingkit.training.loop.OFFICIAL_LEARNING_RATES` times ``lr_scale``:
    base ``backbone 1e-4, aspp 5e-4, decoder 5e-4``; refine ``backbone 5e-5, aspp 5e-5,
    decoder 1e-4, refiner 3e-4``.
    """
    from mattingkit.training.loop import OFFICIAL_LEARNING_RATES

    for stage, scale in (("base", 1.0), ("refine", 1.0), ("base", 3.0), ("refine", 0.5)):
        got, error = call_student(fn, stage, scale)
        expected = {name: lr * scale for name, lr in OFFICIAL_LEARNING_RATES[stage].items()}
        if error is None and not isinstance(got, dict):
            error = f"expected a dict {{submodule: lr}}, got {describe(got)}"
        if error is None and set(got) != set(expected):
            error = f"expected the groups {sorted(expected)}, got {sorted(got)}"
        if error is None:
            wrong = [k for k in expected if abs(float(got[k]) - expected[k]) > 1e-12]
            if wrong:
                k = wrong[0]
                error = f"the {k} rate should be {expected[k]:g}, got {got[k]!r}"
                if stage == "refine" and k == "refiner":
                    error += " (the new refiner learns fastest: it starts from scratch)"
        if error is not None:
            return failed(f"learning rates for stage {stage!r} with lr_scale {scale}: {error}.")
    return passed("the parameter groups and rates match the official train_base/train_refine.")


@answer_required
def check_refine_sample_pixels(fn: Callable[[int, float], Any]) -> CheckResult:
    """Chapter 06: ``fn(size, fraction)`` = pixels the refiner re-predicts in a size×size crop.

    ``fraction`` of the crop's pixels, rounded to whole 4×4 patches (a multiple of 16) and at
    least 16 patches, as :func:`mattingkit.training.loop.refine_sample_pixels` does.
    """
    from mattingkit.core.paper import REFINE_SHARE
    from mattingkit.training.loop import TrainConfig, refine_sample_pixels

    cases = [
        (512, REFINE_SHARE),
        (1024, REFINE_SHARE),
        (256, 0.1),
        (64, REFINE_SHARE),
    ]
    for size, fraction in cases:
        got, error = call_student(fn, size, fraction)
        expected = refine_sample_pixels(
            TrainConfig(stage="refine", size=size, refine_sample_fraction=fraction)
        )
        if error is None and (not isinstance(got, int) or isinstance(got, bool)):
            error = f"expected an int number of pixels, got {describe(got)}"
        if error is None and got != expected:
            error = f"expected {expected:,} pixels, got {got:,}"
            if got % 16:
                error += " (not a whole number of 4×4 patches: round patches, then × 16)"
            elif size == 64:
                error += " (a tiny crop still refines at least 16 patches)"
        if error is not None:
            return failed(f"refine pixels for a {size}×{size} crop at {fraction:.4f}: {error}.")
    return passed("refine_sample_pixels agrees: the refiner sees the HD share of every crop.")


@answer_required
def check_per_process_batch(fn: Callable[[int, int], Any]) -> CheckResult:
    """Chapter 06: ``fn(global_batch, world_size)`` splits a batch over DDP processes.

    Return ``global_batch // world_size``; raise ``ValueError`` when it does not divide
    evenly or leaves a process fewer than 2 images (BatchNorm in the ASPP pooling branch
    cannot normalise a single value in training mode), as
    :func:`mattingkit.training.loop.per_process_batch` does.
    """
    from mattingkit.training.loop import per_process_batch

    for batch, world in ((8, 1), (8, 2), (12, 4)):
        expected = per_process_batch(batch, world)
        got, error = call_student(fn, batch, world)
        if error is None and got != expected:
            error = f"expected {expected}, got {describe(got)}"
        if error is not None:
            return failed(f"batch {batch} over {world} process(es): {error}.")
    for batch, world, why in ((8, 3, "8 does not divide by 3"), (4, 4, "1 image per process")):
        try:  # per_process_batch refuses these splits (tests/test_train.py checks it)
            got = fn(batch, world)
        except ValueError:
            continue
        except Exception as error:  # noqa: BLE001 - report, never crash the notebook
            return failed(
                f"batch {batch} over {world}: raise ValueError, not {type(error).__name__}."
            )
        return failed(
            f"batch {batch} over {world} processes ({why}) should raise ValueError, got {describe(got)}."
        )
    return passed("the batch split is right, and impossible splits fail with a clear error.")


# --- Chapter 08 -----------------------------------------------------------------------------


@answer_required
def check_pipeline_fps(fn: Callable[[dict[str, float]], Any]) -> CheckResult:
    """Chapter 08: ``fn(budget)`` -> the frame rate a one-frame-in-flight pipeline can reach.

    ``budget`` maps each stage to milliseconds. With one frame in flight the next frame
    leaves only when the previous one is drawn, so the stages add up:
    ``fps = 1000 / sum(budget.values())``.
    """
    cases = (
        {"capture": 5.0, "transfer": 10.0, "inference": 80.0, "draw": 5.0},
        {"inference": 20.0},
        {
            "capture": 2.5,
            "queue": 0.0,
            "decode": 1.5,
            "inference": 46.0,
            "encode": 2.0,
            "draw": 3.0,
        },
    )
    for budget in cases:
        expected = 1000.0 / sum(budget.values())
        got, error = call_student(fn, dict(budget))
        if error is None and not isinstance(got, (int, float)):
            error = f"expected a number of frames per second, got {describe(got)}"
        if error is None and abs(got - expected) > 1e-6 * expected:
            error = f"expected {expected:.2f} fps, got {got:.2f}"
            if abs(got - 1000.0 / max(budget.values())) < 1e-6:
                error += " (that is the slowest stage alone: with one frame in flight they add up)"
        if error is not None:
            return failed(f"pipeline fps for {budget}: {error}.")
    return passed("one frame in flight: the stages add up, and fps = 1000 / total ms.")


@answer_required
def check_frames_dropped(fn: Callable[[float, float, float], Any]) -> CheckResult:
    """Chapter 08: ``fn(camera_fps, matting_fps, seconds)`` -> frames dropped (latest wins).

    Every camera frame the model had no time for is dropped:
    ``round(max(0, camera_fps - matting_fps) * seconds)``; none when the model keeps up.
    """
    for camera, matting, seconds in ((30.0, 12.0, 10.0), (30.0, 45.0, 5.0), (25.0, 7.5, 2.0)):
        expected = round(max(0.0, camera - matting) * seconds)
        got, error = call_student(fn, camera, matting, seconds)
        if error is None and (not isinstance(got, (int, float)) or round(got) != expected):
            error = f"expected {expected} frames, got {describe(got)}"
            if matting > camera:
                error += " (a model faster than the camera drops nothing: it waits for frames)"
        if error is not None:
            return failed(f"camera {camera} fps, matting {matting} fps, {seconds} s: {error}.")
    return passed("latest frame wins: what the model cannot keep up with is dropped, never queued.")


# --- Chapter 07 -----------------------------------------------------------------------------


@answer_required
def check_preset_patches(fn: Callable[[str, int, int], Any]) -> CheckResult:
    """Chapter 07: ``fn(preset, height, width)`` = 4×4 patches refined with a preset.

    The presets are :data:`mattingkit.apps.inference.PRESETS` (``"hd"``: 80,000 pixels, ``"4k"``:
    320,000); sampling refines ``min(pixels // 16, (H/4)·(W/4))`` patches.
    """
    from mattingkit.apps.inference import PRESETS

    cases = (("hd", 1080, 1920), ("4k", 2160, 3840), ("hd", 540, 960), ("4k", 1080, 1920),
             ("4k", 400, 400))  # fmt: skip
    for preset, height, width in cases:
        pixels = int(PRESETS[preset]["refine_sample_pixels"])
        expected = min(pixels // 16, (height // 4) * (width // 4))
        got, error = call_student(fn, preset, height, width)
        if error is None and got != expected:
            error = f"expected {expected:,}, got {describe(got)}"
            if got == pixels:
                error += " (that is pixels; each patch is 4×4 = 16 pixels)"
            elif got == pixels // 16:
                error += " (the frame has fewer patches than that: cap it)"
        if error is not None:
            return failed(f"{preset} preset on {width}×{height}: {error}.")
    return passed("HD refines 5,000 patches, 4K 20,000, capped by the patches a frame has.")


@answer_required
def check_gmac_ratio(ratio: Any, backbone: str = "mobilenetv2") -> CheckResult:
    """Chapter 07: predicted GMac(4K) / GMac(HD) with the paper's settings, within 3%."""
    from mattingkit.core.paper import RESOLUTIONS
    from mattingkit.speed.profile import gmacs, speed_test_model

    with torch.device("meta"):
        hd, uhd = speed_test_model(backbone, "HD"), speed_test_model(backbone, "4K")
    expected = gmacs(uhd, RESOLUTIONS["4k"].size) / gmacs(hd, RESOLUTIONS["hd"].size)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):
        return failed(f"expected a number (a ratio), got {describe(ratio)}.")
    if abs(ratio - expected) <= 0.03 * expected:
        return passed(
            f"{backbone}: 4K costs {expected:.2f}× HD, not 4×: the base network sees the same "
            "480×270 pixels; only the refiner's patches grow (5,000 → 20,000)."
        )
    if abs(ratio - 4.0) < 0.05:
        return failed(
            "4 is the ratio of pixels. Which part of the network actually sees 4× the pixels? "
            "(backbone_scale halves from 1/4 to 1/8.)"
        )
    return failed(
        f"{ratio:.2f} is off. Split HD's cost into base network and refiner (gmacs_by_module), "
        "then ask what each part sees at 4K."
    )


@answer_required
def check_naive_composite(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Chapter 07: ``fn(src, pha, new_bgr)`` = the cut-out a plain mask tool makes: α·I + (1−α)·B'."""

    def reference(src: torch.Tensor, pha: torch.Tensor, new_bgr: torch.Tensor) -> torch.Tensor:
        return pha * src + (1 - pha) * new_bgr

    cases = [
        ("one 3×4×5 image", (_random(70, 3, 4, 5), _random(71, 1, 4, 5), _random(72, 3, 4, 5))),
        (
            "a batch of two",
            (_random(73, 2, 3, 6, 6), _random(74, 2, 1, 6, 6), _random(75, 2, 3, 6, 6)),
        ),
    ]
    return check_against_reference(fn, reference, cases, name="naive_composite")


# --- Chapter 04b ----------------------------------------------------------------------------


@answer_required
def check_window_share(fn: Callable[[int, int, int, int], Any]) -> CheckResult:
    """Chapter 04b: ``fn(patches, window_side, height, width)`` = values the window path upsamples
    (one ``window_side``² window per patch), as a share of the half-resolution map of an
    ``height`` × ``width`` frame (one channel)."""
    cases = ((5_000, 10, 1080, 1920), (20_000, 16, 2160, 3840), (100, 10, 1080, 1920))
    for patches, side, height, width in cases:
        expected = patches * side * side / ((height // 2) * (width // 2))
        got, error = call_student(fn, patches, side, height, width)
        if error is None and (
            not isinstance(got, (int, float)) or abs(got - expected) > 1e-6 * max(expected, 1)
        ):
            error = f"expected {expected:.4f}, got {describe(got)}"
            if isinstance(got, (int, float)) and abs(4 * got - expected) < 1e-6 * expected:
                error += " (compare with the half-resolution map, not the full frame)"
        if error is not None:
            return failed(f"{patches:,} windows of {side}×{side} at {width}×{height}: {error}.")
    return passed(
        "HD: 5,000 windows hold 0.96 of the half-resolution map; 4K: 20,000 hold 2.47 of it, "
        "so the window path's advantage shrinks at 4K."
    )


@answer_required
def check_fixed_preset_share(fn: Callable[[int, int, int], Any]) -> CheckResult:
    """Chapter 04b: ``fn(sample_pixels, height, width)`` = share of the frame a fixed pixel
    count refines (whole 4×4 patches, never more than the frame has)."""
    cases = ((80_000, 1080, 1920), (80_000, 480, 640), (80_000, 240, 320), (320_000, 2160, 3840))
    for pixels, height, width in cases:
        expected = min(pixels, (height // 4) * (width // 4) * 16) / (height * width)
        got, error = call_student(fn, pixels, height, width)
        if error is None and (not isinstance(got, (int, float)) or abs(got - expected) > 1e-9):
            error = f"expected {expected:.4f}, got {describe(got)}"
            if isinstance(got, (int, float)) and got > 1:
                error += " (a frame cannot be refined more than whole: cap it)"
        if error is not None:
            return failed(f"{pixels:,} pixels on {width}×{height}: {error}.")
    return passed("80,000 pixels are 3.9% of HD, 26% of 640×480 and all of 320×240.")
