"""Operators: adjoints, SVD pieces, pseudo-inverses, masks, kernels, nonlinear maps (issue #3).

Everything runs in float32 on 3x32x32 / 3x64x64 images with seeded generators.  Tolerances are
relative (to the norms involved) and sized for float32 round-off accumulated over a few thousand
terms (~1e-6 per operation, so 1e-5 relative for inner products and 1e-5..1e-4 for maps that chain
several float32 matmuls); exact-in-arithmetic identities are checked at those tolerances.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import operators
from operators import OperatorShapeError, SVDOperator

S32 = (3, 32, 32)
S64 = (3, 64, 64)

# (case id, registry name, shape, params): every registered operator appears at least once
CASES = [
    ("inpaint_half", "inpaint_half", S32, {}),
    ("inpaint_box", "inpaint_box", S32, {"fraction": 0.25}),
    ("inpaint_box_size", "inpaint_box", S32, {"size": 16}),
    ("inpaint_expand", "inpaint_expand", S32, {}),
    ("inpaint_random", "inpaint_random", S32, {"fraction": 0.7, "seed": 3}),
    ("inpaint_srmask", "inpaint_srmask", S32, {}),
    ("inpaint_alllines", "inpaint_alllines", S32, {}),
    ("sr_block", "sr_block", S32, {"factor": 4}),
    ("sr_bicubic", "sr_bicubic", S32, {"factor": 4}),
    ("sr_bicubic_x2_thr", "sr_bicubic", S32, {"factor": 2, "threshold": 0.3}),
    ("deblur_uniform", "deblur_uniform", S32, {"size": 5, "threshold": 0.03}),
    ("deblur_uniform_1d", "deblur_uniform", S32, {"size": 5, "threshold": 0.2, "threshold_mode": "1d"}),
    ("deblur_gauss", "deblur_gauss", S64, {}),
    ("deblur_gauss_wide", "deblur_gauss", S32, {"std": 1.5, "size": 11, "threshold": 0.03}),
    ("colorize", "colorize", S32, {}),
    ("deblur_motion", "deblur_motion", S32, {"seed": 1}),
    ("deblur_motion64", "deblur_motion", S64, {"seed": 0}),
    ("matrix", "matrix", (6,), {"matrix": torch.randn(4, 6, generator=torch.Generator().manual_seed(9))}),
    ("phase_retrieval", "phase_retrieval", S32, {}),
    ("hdr", "hdr", S32, {}),
    ("jpeg", "jpeg", S32, {}),
    ("jpeg_q75", "jpeg", S64, {"quality": 75, "subsample": True}),
    # bkse KernelWizard with the small random-weight fixture (tests/test_deblur_nonlinear.py)
    ("deblur_nonlinear", "deblur_nonlinear", (3, 128, 128),
     {"seed": 0, "path": str(Path(__file__).resolve().parent / "fixtures" / "checkpoints" / "bkse_small.pth"),
      "nf": 4, "front_RBs": 1, "back_RBs": 1, "kernel_dim": 16, "extractor_blocks": 1}),
]
IDS = [c[0] for c in CASES]

PROVIDES = {
    "inpaint_half": {"forward", "adjoint", "svd"}, "inpaint_box": {"forward", "adjoint", "svd"},
    "inpaint_expand": {"forward", "adjoint", "svd"}, "inpaint_random": {"forward", "adjoint", "svd"},
    "inpaint_srmask": {"forward", "adjoint", "svd"}, "inpaint_alllines": {"forward", "adjoint", "svd"},
    "sr_block": {"forward", "adjoint", "svd"}, "sr_bicubic": {"forward", "adjoint", "svd"},
    "deblur_uniform": {"forward", "adjoint", "svd"},
    "deblur_gauss": {"forward", "adjoint", "svd"}, "colorize": {"forward", "adjoint", "svd"},
    "matrix": {"forward", "adjoint", "svd"}, "deblur_motion": {"forward", "adjoint"},
    "phase_retrieval": {"forward"}, "hdr": {"forward"}, "jpeg": {"forward"}, "deblur_nonlinear": {"forward"},
}


def build(case_id):
    _, name, shape, params = CASES[IDS.index(case_id)]
    return operators.build(name, shape, **params)


def rand(shape, seed, b=2):
    return torch.randn((b,) + tuple(shape), generator=torch.Generator().manual_seed(seed))


def ids_where(pred):
    return [cid for cid in IDS if pred(build(cid))]


LINEAR = ids_where(lambda op: op.linear)
SVD = ids_where(lambda op: isinstance(op, SVDOperator))
NONLINEAR = ids_where(lambda op: not op.linear)


def close(a, b, rtol):
    """||a - b|| <= rtol * max(||a||, ||b||, tiny)."""
    scale = max(float(a.norm()), float(b.norm()), 1e-30)
    return float((a - b).norm()) <= rtol * scale


# -- registry, capabilities, shapes -------------------------------------------------------------

def test_every_registered_operator_is_covered():
    """Each registered name has at least one case here and a declared capability set."""
    assert set(operators.names()) <= {c[1] for c in CASES}
    assert set(operators.names()) <= set(PROVIDES)


@pytest.mark.parametrize("cid", IDS)
def test_provides_and_linearity(cid):
    """`provides` says what a solver may use; linear iff it provides an adjoint."""
    op = build(cid)
    assert set(op.provides) == PROVIDES[CASES[IDS.index(cid)][1]]
    assert op.linear == ("adjoint" in op.provides)
    if "svd" not in op.provides:
        with pytest.raises(operators.MissingCapability):
            op.require(["svd"])


@pytest.mark.parametrize("cid", IDS)
def test_output_shape_and_wrong_input_shape(cid):
    """y has shape (B, *y_shape); a wrongly shaped x is an OperatorShapeError naming the shapes."""
    op = build(cid)
    x = rand(op.x_shape, 0).clamp(-1, 1)
    assert tuple(op(x).shape) == (2,) + op.y_shape
    bad = torch.zeros((2,) + tuple(s + 8 for s in op.x_shape))
    with pytest.raises(OperatorShapeError, match="must have shape"):
        op(bad)


def test_build_time_shape_errors():
    """Shapes an operator cannot act on are refused when it is built, with a clear message."""
    with pytest.raises(OperatorShapeError, match="multiples of 8"):
        operators.build("jpeg", (3, 30, 32))
    with pytest.raises(OperatorShapeError, match="multiples of 16"):
        operators.build("jpeg", (3, 40, 40), subsample=True)
    with pytest.raises(OperatorShapeError, match=r"\(3, H, W\)"):
        operators.build("colorize", (1, 32, 32))
    with pytest.raises(ValueError, match="too large"):
        operators.build("deblur_motion", (3, 8, 8), size=21)


# -- linear operators ---------------------------------------------------------------------------

@pytest.mark.parametrize("cid", LINEAR)
def test_adjoint_identity(cid):
    """<A x, y> = <x, A^T y> on random inputs (float32 inner products over <= 12k terms:
    relative error ~1e-6; tolerance 1e-5 of ||Ax|| ||y|| + ||x|| ||A^T y||)."""
    op = build(cid)
    x, y = rand(op.x_shape, 1), rand(op.y_shape, 2)
    ax, aty = op.forward(x), op.adjoint(y)
    assert tuple(aty.shape) == (2,) + op.x_shape
    lhs = (ax * y).flatten(1).sum(1)
    rhs = (x * aty).flatten(1).sum(1)
    scale = ax.flatten(1).norm(dim=1) * y.flatten(1).norm(dim=1) + x.flatten(1).norm(dim=1) * aty.flatten(1).norm(dim=1)
    assert torch.all((lhs - rhs).abs() <= 1e-5 * scale), (lhs, rhs)


@pytest.mark.parametrize("cid", SVD)
def test_svd_pieces(cid):
    """A x = U(s * Vt(x)[:, :k]) (and the base-class adjoint equals the direct one); V, Vt and U, Ut
    are orthonormal: V(Vt x) = x, Vt(V c) = c, norms preserved (tolerance 1e-5 relative)."""
    op = build(cid)
    x, y = rand(op.x_shape, 3), rand(op.y_shape, 4)
    s = op.singulars()
    k = s.numel()
    assert k <= min(op.n, op.m) and torch.all(s > 0) and torch.all(torch.isfinite(1 / s))
    c = op.Vt(x)
    assert tuple(c.shape) == (2, op.n)
    assert close(op.U(s * c[:, :k]), op.forward(x), 1e-5)
    assert close(SVDOperator.forward(op, x), op.forward(x), 1e-5)
    assert close(SVDOperator.adjoint(op, y), op.adjoint(y), 1e-5)
    assert close(op.V(c), x, 1e-5)
    assert close(c.norm(dim=1), x.flatten(1).norm(dim=1), 1e-5)
    c2 = rand((op.n,), 5)
    assert close(op.Vt(op.V(c2)), c2, 1e-5)
    u = op.Ut(y)
    assert u.shape[1] >= k
    assert close(u.norm(dim=1), y.flatten(1).norm(dim=1), 1e-5)
    assert close(op.U(u), y, 1e-5)


@pytest.mark.parametrize("cid", SVD)
def test_pinv(cid):
    """A A^+ A x = A x and A^+ A A^+ y = A^+ y (the Moore-Penrose conditions on the kept singular
    values); the pseudo-inverse is finite.  Tolerance 1e-4: A^+ multiplies by 1/s up to 1/0.03."""
    op = build(cid)
    x, y = rand(op.x_shape, 6), rand(op.y_shape, 7)
    ax = op.forward(x)
    assert close(op.forward(op.pinv(ax)), ax, 1e-4)
    py = op.pinv(y)
    assert torch.all(torch.isfinite(py))
    assert close(op.pinv(op.forward(py)), py, 1e-4)


def test_gauss_pinv_finite_at_256():
    """At DPS's size (256 px: 61 taps, std 3) the default threshold (0.03) keeps 4121 of 65536
    singular values, all > 0.03, and A^+ y is finite."""
    op = operators.build("deblur_gauss", (1, 256, 256))
    assert op.size == 61 and op.std == 3.0
    s = op.singulars()
    assert float(s.min()) > 0.03 and s.numel() < 256 * 256
    y = rand((1, 256, 256), 8, b=1)
    assert torch.all(torch.isfinite(op.pinv(y)))


def test_separable_drops_exact_zero_singulars():
    """Singular values that are 0 in float32 are dropped even with threshold 0, so A^+ never
    divides by zero (a rank-deficient separable map: diag(1, .5, 0, ..., 0) on rows)."""
    from operators.separable import Separable
    d = torch.diag(torch.tensor([1.0, 0.5] + [0.0] * 6, dtype=torch.float64))
    op = Separable((1, 8, 8), d, torch.eye(8, dtype=torch.float64), threshold=0.0)
    assert op.singulars().numel() == 16 and float(op.singulars().min()) == 0.5
    y = rand((1, 8, 8), 8)
    py = op.pinv(y)
    assert torch.all(torch.isfinite(py))
    assert close(op.forward(py), op.forward(op.pinv(op.forward(py))), 1e-6)


# -- inpainting masks ---------------------------------------------------------------------------

def explicit_mask(cid, h=32, w=32):
    m = torch.zeros(h, w, dtype=torch.bool)
    if cid == "inpaint_half":
        m[:, : w // 2] = True
    elif cid == "inpaint_box":          # fraction 0.25 of 32 = 8 px square missing, centred
        m[:] = True
        m[12:20, 12:20] = False
    elif cid == "inpaint_box_size":     # 16 px
        m[:] = True
        m[8:24, 8:24] = False
    elif cid == "inpaint_expand":       # only the centre 16x16 kept
        m[8:24, 8:24] = True
    elif cid == "inpaint_srmask":
        m[0::2, 0::2] = True
    elif cid == "inpaint_alllines":
        m[0::2, :] = True
    return m


@pytest.mark.parametrize("cid", ["inpaint_half", "inpaint_box", "inpaint_box_size", "inpaint_expand",
                                 "inpaint_srmask", "inpaint_alllines", "inpaint_random"])
def test_inpainting_keeps_exactly_the_mask(cid):
    """y is x at the observed pixels (C-major order), identical on every channel; A^T y puts them
    back and zeros the rest (exact: pure indexing)."""
    op = build(cid)
    if cid == "inpaint_random":
        m = op.mask[0]
        assert int((~m).sum()) == round(0.7 * 32 * 32)
    else:
        m = explicit_mask(cid)
        assert torch.equal(op.mask[0], m)
    assert all(torch.equal(op.mask[c], m) for c in range(3))
    x = rand(op.x_shape, 9)
    full = m.expand(3, 32, 32)
    assert torch.equal(op(x), x[:, full])
    back = op.adjoint(op(x))
    assert torch.equal(back, torch.where(full, x, torch.zeros(())))


def test_inpaint_random_seeded():
    """Same seed -> same mask on two builds; another seed -> another mask; no global RNG used."""
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = operators.build("inpaint_random", S32, fraction=0.5, seed=11)
    b = operators.build("inpaint_random", S32, fraction=0.5, seed=11)
    c = operators.build("inpaint_random", S32, fraction=0.5, seed=12)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    assert int((~a.mask[0]).sum()) == 512


# -- blur operators against direct convolutions -------------------------------------------------

def test_gauss_kernel_matches_dps_scipy():
    """The 61-tap std-3 kernel equals scipy.ndimage.gaussian_filter of a centred delta (DPS's
    construction) to 1e-12 (float64 on both sides)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    from operators.gaussian_blur import gaussian_kernel_2d
    delta = np.zeros((61, 61))
    delta[30, 30] = 1.0
    ref = ndimage.gaussian_filter(delta, sigma=3.0)
    assert np.abs(gaussian_kernel_2d(61, 3.0).numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("name,params", [("deblur_gauss", {"std": 1.5, "size": 11}),
                                         ("deblur_gauss", {}),
                                         ("deblur_uniform", {"size": 5})])
def test_separable_blur_threshold0_is_zero_padded_convolution(name, params):
    """With threshold 0 the SVD operator equals conv2d with zero padding of the 2-D kernel (the
    kernel is symmetric, so convolution = correlation), and scipy.ndimage.convolve (mode
    'constant'); tolerance 1e-5 relative (float32)."""
    op = operators.build(name, S64, threshold=0.0, **params)
    size = op.size if name == "deblur_gauss" else params["size"]
    k1 = op.kernel.double() if name == "deblur_gauss" else torch.full((size,), 1.0 / size, dtype=torch.float64)
    k2 = torch.outer(k1, k1)
    x = rand(S64, 10)
    ref = F.conv2d(x.double(), k2.expand(3, 1, size, size), padding=size // 2, groups=3).float()
    assert close(op(x), ref, 1e-5)
    assert close(SVDOperator.forward(op, x), ref, 1e-5)
    ndimage = pytest.importorskip("scipy.ndimage")
    sp = np.stack([ndimage.convolve(x[0, c].double().numpy(), k2.numpy(), mode="constant") for c in range(3)])
    assert close(op(x)[0], torch.from_numpy(sp).float(), 1e-5)


@pytest.mark.parametrize("factor", [2, 4])
def test_sr_bicubic_matches_torch_antialiased_resize(factor):
    """Away from the borders (where the taps are renormalised here and clamped by torch), the
    operator is torch's antialiased bicubic downsampling (Keys a = -0.5, kernel stretched by the
    factor), and its spectrum is spread (unlike sr_block's, all 1/f)."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    op = operators.build("sr_bicubic", (3, 32, 32), factor=factor)
    ref = torch.nn.functional.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True,
                                          align_corners=False)
    b = 2
    assert torch.allclose(op(x)[..., b:-b, b:-b], ref[..., b:-b, b:-b], atol=1e-5)
    s = op.singulars()
    assert s.numel() == 3 * (32 // factor) ** 2 and s.max() / s.min() > 1.5


def test_gauss_default_scaling():
    """std = 3 H / 256 and size = 2 floor(30 H / 256 + 1/2) + 1 (61 / 3.0 at 256), overridable."""
    op = operators.build("deblur_gauss", S64)
    assert op.std == pytest.approx(0.75) and op.size == 17
    op = operators.build("deblur_gauss", S32, std=2.0, size=13)
    assert op.std == 2.0 and op.size == 13
    assert float(op.kernel.sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("cid", ["deblur_motion", "deblur_motion64"])
def test_motion_blur_matches_reflect_correlation(cid):
    """deblur_motion = correlation with its kernel after reflect padding, checked against
    scipy.ndimage.correlate(mode='mirror') (torch 'reflect' = scipy 'mirror'); 1e-5 relative."""
    ndimage = pytest.importorskip("scipy.ndimage")
    op = build(cid)
    k = op.kernel.double().numpy()
    x = rand(op.x_shape, 11, b=1)
    ref = np.stack([ndimage.correlate(x[0, c].double().numpy(), k, mode="mirror") for c in range(3)])
    assert close(op(x)[0], torch.from_numpy(ref).float(), 1e-5)


def test_motion_kernel_seeded_and_valid():
    """Kernel: non-negative, sums to 1, 61 taps at 256 px (9 at 32, 17 at 64), the same for the same
    seed, different for another seed, no global RNG used; constants pass unchanged."""
    from operators.motion_blur import motion_kernel
    torch.manual_seed(99)
    state = torch.get_rng_state()
    a = operators.build("deblur_motion", S32, seed=5)
    b = operators.build("deblur_motion", S32, seed=5)
    c = operators.build("deblur_motion", S32, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.kernel, b.kernel) and not torch.equal(a.kernel, c.kernel)
    assert a.kernel.shape == (9, 9) and build("deblur_motion64").kernel.shape == (17, 17)
    k = motion_kernel(61, 0.5, 0)
    assert k.shape == (61, 61) and float(k.min()) >= 0 and float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    assert int((k > 1e-3).sum()) > 20          # a trajectory, not a point
    ones = torch.full((1,) + S32, 0.3)
    assert torch.allclose(a(ones), ones, atol=1e-6)


def test_motion_adjoint_differentiable():
    """The explicit adjoint is itself differentiable (solvers may backpropagate through A^T)."""
    op = build("deblur_motion")
    y = rand(S32, 12).requires_grad_(True)
    op.adjoint(y).square().sum().backward()
    assert torch.all(torch.isfinite(y.grad)) and float(y.grad.abs().sum()) > 0


# -- colorization -------------------------------------------------------------------------------

def test_colorize_values():
    """y = channel mean, y shape (1, H, W); singular values are all 1/sqrt(3)."""
    op = build("colorize")
    x = rand(S32, 13)
    assert op.y_shape == (1, 32, 32)
    assert torch.allclose(op(x), x.mean(1, keepdim=True), atol=1e-6)
    assert torch.allclose(op.singulars(), torch.full((32 * 32,), 1 / math.sqrt(3)))
    grey = torch.rand((1, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(op.pinv(grey), grey.expand(1, 3, 32, 32), atol=1e-6)


# -- nonlinear operators ------------------------------------------------------------------------

@pytest.mark.parametrize("cid", NONLINEAR + ["jpeg_cubic"])
def test_nonlinear_differentiable(cid):
    """Autograd runs through the forward map and gives finite, non-zero gradients."""
    op = operators.build("jpeg", S32, quality=10, rounding="cubic") if cid == "jpeg_cubic" else build(cid)
    x = (0.4 * rand(op.x_shape, 14)).requires_grad_(True)
    op(x).square().sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and float(x.grad.abs().sum()) > 0


def test_phase_retrieval_values():
    """|F(pad(delta))| = a / sqrt(N) everywhere (orthonormal DFT, N = 48 * 48 for 32 px padded by 8
    per side); Parseval ||y|| = ||x||; sign and the zero frequency at the centre: for x = constant c
    on the image, y at the centre = c * 32 * 32 / 48 per channel."""
    op = build("phase_retrieval")
    assert op.y_shape == (3, 48, 48)
    x = torch.zeros((1,) + S32)
    x[0, :, 5, 17] = torch.tensor([0.5, -1.0, 0.25])
    y = op(x)
    for c, a in enumerate([0.5, 1.0, 0.25]):
        assert torch.allclose(y[0, c], torch.full((48, 48), a / 48), rtol=1e-5)
    z = rand(S32, 15)
    assert close(op(z).flatten(1).norm(dim=1), z.flatten(1).norm(dim=1), 1e-5)
    assert torch.allclose(op(-z), op(z), atol=1e-6)
    const = op(torch.full((1,) + S32, 0.5))
    assert float(const[0, 0, 24, 24]) == pytest.approx(0.5 * 32 * 32 / 48, rel=1e-5)
    assert op.to_image(y) is None


def test_hdr_values():
    """clip(2 x, -1, 1): 0.25 -> 0.5, 0.7 -> 1, -0.6 -> -1; gradient 2 inside, 0 when saturated."""
    op = operators.build("hdr", (5,))
    x = torch.tensor([[0.25, 0.7, -0.6, -0.1, 0.0]], requires_grad=True)
    y = op(x)
    assert torch.allclose(y, torch.tensor([[0.5, 1.0, -1.0, -0.2, 0.0]]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([[2.0, 0.0, 0.0, 2.0, 2.0]]))


def test_jpeg_values():
    """Known values: quality 100 (all steps 1) is the identity up to rounding DCT coefficients to
    integers (rms 0.004, max 0.02 in [-1, 1] units measured; tolerances 0.006 / 0.03); at quality 50
    a grey image 0 (pixel 127.5, DC = -4 < half the step 16) decodes to pixel 128 = 1/255; a grey
    level whose DC is a multiple of the step (pixel 138: DC = 80 = 5 * 16) is a fixed point; and
    quality 2 destroys detail (mean error > 0.2 on noise)."""
    x = rand(S64, 16).clamp(-1, 1)
    e = operators.build("jpeg", S64, quality=100)(x) - x
    assert float(e.pow(2).mean().sqrt()) < 0.006 and float(e.abs().max()) < 0.03
    op = operators.build("jpeg", S32, quality=50)
    assert torch.allclose(op(torch.zeros((1,) + S32)), torch.full((1,) + S32, 1 / 255), atol=1e-6)
    v = 138 / 127.5 - 1
    assert torch.allclose(op(torch.full((1,) + S32, v)), torch.full((1,) + S32, v), atol=1e-6)
    sub = operators.build("jpeg", S32, quality=50, subsample=True)
    assert torch.allclose(sub(torch.full((1,) + S32, v)), torch.full((1,) + S32, v), atol=1e-6)
    assert float((build("jpeg")(x[:, :, :32, :32]) - x[:, :, :32, :32]).abs().mean()) > 0.2
    grey = operators.build("jpeg", (1, 16, 16), quality=100)
    g = rand((1, 16, 16), 17).clamp(-1, 1)
    assert float((grey(g) - g).abs().max()) < 0.03


def test_jpeg_tables():
    """IJG quality scaling of the T.81 Annex K tables: Q 50 gives the base tables, Q 100 all ones,
    Q 2 clipped to 255 except the smallest entries; DiffJPEG's unclipped variant is T * 25 at Q 2."""
    from operators.jpeg import CHROMA_TABLE, LUMA_TABLE, quality_table
    base = torch.tensor(LUMA_TABLE, dtype=torch.float64)
    assert torch.equal(quality_table(LUMA_TABLE, 50), base)
    assert torch.equal(quality_table(CHROMA_TABLE, 100), torch.ones(8, 8, dtype=torch.float64))
    q2 = quality_table(LUMA_TABLE, 2)
    assert float(q2[0, 2]) == 250 and float(q2.max()) == 255
    assert torch.allclose(quality_table(LUMA_TABLE, 2, clip=False), base * 25)


# -- figure -------------------------------------------------------------------------------------

def test_degradations_figure(tmp_path):
    """The figure helper draws every task (image-shaped y, SVD pinv pictures, |FFT| magnitudes,
    vector y) into one PNG."""
    from report.degradations import degradations_figure, measurement_picture
    img = rand(S32, 18, b=1).clamp(-1, 1)
    ops = {}
    for cid in IDS:
        op = build(cid)
        if op.x_shape != S32:
            continue
        ops[cid] = (op, op(img))
    assert measurement_picture(*ops["phase_retrieval"])[1] == "magnitude"
    assert measurement_picture(*ops["sr_block"])[1] == "image"
    path = degradations_figure(img[0], ops, tmp_path / "fig" / "degradations.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
