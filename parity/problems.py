"""Named parity problems: seeded, small, with exact answers where the prior allows.

A problem is a function registered with ``@problem(name)`` returning a :class:`Problem`.  The
measurement is drawn once from a generator seeded by the problem's name (``dipbench.seeding``),
so our side and a reference adapter that imports this module see the same y.  Image-shaped
problems use a smooth Gaussian prior (squared-exponential spatial kernel x channel correlation),
scaled so that samples stay inside [-1, 1] (std 0.2: 5 standard deviations): solvers that clip
x0-hat to the image range (DPS, DiffPIR) are then not affected by the clip.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

import operators
import priors
from dipbench.seeding import generator

PROBLEMS: dict = {}


@dataclass
class Problem:
    name: str
    prior: object
    op: object
    y: torch.Tensor              # (1, *y_shape)
    sigma_y: float
    x_star: torch.Tensor         # (1, *x_shape), the ground truth y was drawn from
    kind: str                    # "gaussian" | "gmm" | "nonlinear"
    description: str
    info: dict = field(default_factory=dict)


def problem(name: str):
    def deco(fn):
        if name in PROBLEMS:
            raise ValueError(f"parity problem '{name}' registered twice")
        PROBLEMS[name] = fn
        return fn
    return deco


@functools.lru_cache(maxsize=None)
def get(name: str) -> Problem:
    if name not in PROBLEMS:
        raise KeyError(f"unknown parity problem '{name}'; known: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name]()


def names() -> list:
    return sorted(PROBLEMS)


# --- priors ---------------------------------------------------------------------------------
def smooth_image_cov(shape, scale: float = 0.04, length: float = 2.0, rho: float = 0.6,
                     nugget: float = 1e-4) -> torch.Tensor:
    """scale * kron(channel correlation, exp(-|p - q|^2 / (2 length^2))) + nugget * I (float64)."""
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], 1).double()
    k = torch.exp(-torch.cdist(pos, pos) ** 2 / (2 * length ** 2))
    ch = torch.full((c, c), rho, dtype=torch.float64) + (1 - rho) * torch.eye(c, dtype=torch.float64)
    return scale * torch.kron(ch, k) + nugget * torch.eye(c * h * w, dtype=torch.float64)


def image_gaussian(shape, **kw):
    return priors.build("gaussian", mean=torch.zeros(shape), cov=smooth_image_cov(shape, **kw))


def _chol_draw(mean, cov, z):
    """mean + L z with L the Cholesky factor of cov (float64): unlike an eigenbasis, L is unique, so
    the draw does not depend on the LAPACK build or thread count (degenerate eigenvalues would)."""
    n = cov.shape[0]
    L = torch.linalg.cholesky(cov + 1e-12 * torch.eye(n, dtype=torch.float64))
    return mean.reshape(-1).double() + L @ z


def draw_prior(prior, g) -> torch.Tensor:
    """One ground-truth sample (1, *shape), reproducible across machines and thread counts."""
    if hasattr(prior, "components"):                  # Gaussian mixture
        k = int(torch.multinomial(prior.logw64.exp(), 1, generator=g))
        comp = prior.components[k]
        z = torch.randn(prior.n, generator=g, dtype=torch.float64)
        x = _chol_draw(comp.mu64, comp.cov(), z)
    else:
        z = torch.randn(prior.n, generator=g, dtype=torch.float64)
        x = _chol_draw(prior.mu64, prior.cov(), z)
    return x.float().reshape((1,) + tuple(prior.shape))


def _measure(name, prior, op, sigma_y, kind, description, info=None):
    g = generator("parity", name)
    x = draw_prior(prior, g)
    y = op(x)
    y = y + sigma_y * torch.randn(y.shape, generator=g)
    return Problem(name, prior, op, y, float(sigma_y), x, kind, description, info or {})


IMG_DESC = ("3x8x8 Gaussian prior N(0, 0.04 kron(C_ch, K) + 1e-4 I): K squared-exponential over "
            "pixel positions (length 2 px), C_ch channel correlation 0.6")


# --- Gaussian image problems ----------------------------------------------------------------
@problem("gauss8_inpaint_half")
def _gauss8_inpaint_half():
    shape = (3, 8, 8)
    prior = image_gaussian(shape)
    op = operators.build("inpaint_half", shape=shape)
    return _measure("gauss8_inpaint_half", prior, op, 0.05, "gaussian",
                    IMG_DESC + "; inpaint_half (right half of the image missing, all channels); "
                    "sigma_y = 0.05 ([-1, 1] units); y from seed stable_seed('parity', name)")


@problem("gauss8_sr2")
def _gauss8_sr2():
    shape = (3, 8, 8)
    prior = image_gaussian(shape)
    op = operators.build("sr_block", shape=shape, factor=2)
    return _measure("gauss8_sr2", prior, op, 0.05, "gaussian",
                    IMG_DESC + "; sr_block factor 2 (2x2 block averages, y 3x4x4); sigma_y = 0.05")


# --- Gaussian-mixture toy (vector) -------------------------------------------------------------
@problem("gmm10")
def _gmm10():
    from benchmarks.gmm_table import gmm25
    name = "gmm10"
    g = generator("parity", name, "prior")
    prior = gmm25(10, g)
    A = torch.randn(1, 10, generator=g, dtype=torch.float64)
    op = operators.build("matrix", shape=(10,), matrix=A)
    return _measure(name, prior, op, 0.5, "gmm",
                    "25-component Gaussian mixture in d = 10 (MGPS's gmm_25: means (8i, 8j), i, j in -2..2, "
                    "tiled to 10 entries; identity covariances; weights uniform(0, 1) normalised, seeded); "
                    "A ~ N(0, 1) of shape 1 x 10; sigma_y = 0.5; y from seed stable_seed('parity', name)")


# --- nonlinear problems (no closed-form posterior) --------------------------------------------
@problem("gauss8_hdr")
def _gauss8_hdr():
    shape = (3, 8, 8)
    prior = image_gaussian(shape, scale=0.16)
    op = operators.build("hdr", shape=shape, alpha=2.0)
    return _measure("gauss8_hdr", prior, op, 0.05, "nonlinear",
                    IMG_DESC.replace("0.04", "0.16") + " (std 0.4: about a fifth of the pixels saturate); "
                    "hdr: y = clip(2 x, -1, 1); sigma_y = 0.05")


@problem("gauss8_phase")
def _gauss8_phase():
    shape = (3, 8, 8)
    prior = image_gaussian(shape)
    op = operators.build("phase_retrieval", shape=shape, oversample=2.0)
    return _measure("gauss8_phase", prior, op, 0.05, "nonlinear",
                    IMG_DESC + "; phase_retrieval (|orthonormal FFT| of x zero-padded by 2 px, y 3x12x12); "
                    "sigma_y = 0.05")


@problem("gauss16_jpeg")
def _gauss16_jpeg():
    shape = (3, 16, 16)
    prior = image_gaussian(shape, length=3.0)
    op = operators.build("jpeg", shape=shape, quality=10, rounding="cubic", subsample=True, table_clip=False,
                         clip=False)
    return _measure("gauss16_jpeg", prior, op, 0.05, "nonlinear",
                    IMG_DESC.replace("3x8x8", "3x16x16").replace("length 2 px", "length 3 px")
                    + "; jpeg QF 10 in DiffJPEG's form (4:2:0 chroma subsampling, real-valued quantisation "
                    "tables, cubic rounding surrogate, no output clip); sigma_y = 0.05")


# --- DDRM's deblurring operator ----------------------------------------------------------------
@problem("gauss8_deblur_ddrm")
def _gauss8_deblur_ddrm():
    """DDRM's ``Deblurring`` operator as its code builds it: the separable 1-D convolution matrix with
    zero boundary whose row i holds kernel taps j - i + k//2 for j in [i - k//2, i + k//2) (the last
    tap of an odd kernel is not used), 1-D singular values below ZERO set to 0, 2-D singular values
    their products.  Here a 5-tap uniform kernel and ZERO = 0.2 (the VML-MAP paper's threshold)."""
    from operators.separable import Separable, box_kernel, conv_matrix
    shape = (3, 8, 8)
    prior = image_gaussian(shape)
    kernel = box_kernel(5)
    a = conv_matrix(8, kernel[:-1])        # taps at offsets -2..+1: DDRM's matrix for a 5-tap kernel
    op = Separable(shape, a, a, threshold=0.2, threshold_mode="1d")
    return _measure("gauss8_deblur_ddrm", prior, op, 0.05, "gaussian",
                    IMG_DESC + "; DDRM's Deblurring matrix for the 5-tap uniform kernel (taps at offsets "
                    "-2..+1, zero boundary), 1-D singular values below 0.2 zeroed (threshold_mode '1d'); "
                    "sigma_y = 0.05",
                    info={"kernel": kernel.tolist(), "zero": 0.2})
