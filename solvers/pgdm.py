"""PGDM / Pi-GDM (Song, Vahdat, Mardani, Kautz, ICLR'23) in VE form, noisy SVD variant.

At level sigma_t with x0 = D(x_t, sigma_t) and J = dD/dx the guidance is

    g = J^T A^T (A A^T + (sigma_y^2 / r_t^2) I)^-1 (y - A x0),   r_t^2 = sigma_t^2 / (1 + sigma_t^2),

computed in the operator's spectral basis: with ybar = U^T y and s the singular values,
A^T (A A^T + c I)^-1 (y - A x0) = V pad( s (ybar_k - s xbar0_k) / (s^2 + c) ),  xbar0 = V^T x0.
(sigma_y = 0 gives the noiseless Pi-GDM vector A^+ (y - A x0).)  One VJP through the denoiser.
The update is the VE DDIM step (DDIM-eta convention) plus ``weight * g``: the VP-code update
sqrt(abar_{t-1}) sqrt(abar_t) w grad_{x_t^VP} used by RED-diff's Pi-GDM is exactly weight w in VE
coordinates, so the default weight is 1.

Official code is not public.  Defaults follow MGPS's re-implementation of the noisy SVD form
(`sampler/pgdm.yaml`: 1000 steps, DDIM eta = 1, start from pure noise), the reference for this
variant; the DDPM grid is ADM's linear schedule with uniform skip (``vp_uniform``).  Cost per step:
1 NFE + 1 VJP.

``pgdm_steps`` is the reusable loop (also used by MAP-GA's Algorithm 3, ``map_ga_pgdm`` /
``map_ga_d_pgdm``): it starts from a given x at sigmas[0] and runs down the grid; a trailing 0 in
``sigmas`` makes the last step return x0 + g.

Oracle initialisation (``accepts_init``; MAP-GA Table 2's PGDM row, "initialised the same way" as
MAP-GA: from x_0.5 = x_0 + 0.5 eta): ``solve(..., init=(x_sigma, sigma))`` starts from x_sigma at
level sigma instead of pure noise, on ``grid_from``'s grid (an EDM grid is rebuilt from sigma down
with the same number of levels; the VP-uniform grid, whose levels are fixed DDPM timesteps, keeps
its levels below sigma).  The solver sees x_sigma only, never x_0.

``gdm`` on operators without an adjoint (nonlinear ones such as ``jpeg``): see ``GDM``.
"""
from __future__ import annotations

import math

import torch

from dipbench.cg import batched_cg
from dipbench.schedule import edm_sigmas, grid
from .base import Solver, noise
from .diffusion_steps import ddim_step, denoise_vjp
from .registry import register


def pgdm_guidance_vector(op, x0, y, sigma_t: float, sigma_y: float) -> torch.Tensor:
    """A^T (A A^T + (sigma_y^2 / r_t^2) I)^-1 (y - A x0) through the operator's SVD."""
    s = op.singulars()
    k = s.numel()
    r2 = sigma_t ** 2 / (1.0 + sigma_t ** 2)
    c = float(sigma_y) ** 2 / r2
    resid = op.Ut(y)[:, :k] - s * op.Vt(x0)[:, :k]
    return op.V(op.pad_x(s * resid / (s ** 2 + c))).reshape(x0.shape)


def cg_guidance_vector(op, x0, y, sigma_t: float, sigma_y: float, iters: int = 50,
                       tol: float = 1e-6) -> torch.Tensor:
    """The same vector as ``pgdm_guidance_vector`` without an SVD: u = (A A^T + c I)^-1 r by
    conjugate gradients (per batch item, A and A^T only), then A^T u.  For c = 0 and r in the
    range of A, CG started at 0 stays in range(A) and reaches the minimum-norm solution, so A^T u
    = A^+ r as in the noiseless Pi-GDM."""
    r2 = sigma_t ** 2 / (1.0 + sigma_t ** 2)
    c = float(sigma_y) ** 2 / r2
    u = batched_cg(lambda v: op(op.adjoint(v)) + c * v, y - op(x0), iters, tol)
    return op.adjoint(u).reshape(x0.shape)


def grid_from(kind: str, steps: int, den, sigma_min: float, sigma_max: float, rho: float,
              start=None) -> list:
    """The solver's descending sigma grid; with ``start`` (an oracle initialisation level) the grid
    begins at ``start``: an EDM grid is rebuilt between the prior's sigma_min and ``start`` with the
    same number of levels, any other kind keeps its levels below ``start`` behind ``start`` itself."""
    if start is None:
        return grid(kind, steps, den, sigma_min, sigma_max, rho).tolist()
    start = float(start)
    if not 0 < start <= float(den.sigma_max):
        raise ValueError(f"init level sigma = {start} is outside the prior's range "
                         f"(0, {float(den.sigma_max)}]")
    if kind == "edm":
        lo = max(float(sigma_min), float(den.sigma_min))
        if start <= lo:
            return [start]
        return edm_sigmas(steps, lo, start, rho).tolist()
    return [start] + [s for s in grid(kind, steps, den, sigma_min, sigma_max, rho).tolist() if s < start]


def check_init(init, y, den) -> tuple:
    """(x_sigma, sigma) from ``init``, checked: one image per measurement, the prior's shape."""
    x, sigma = init
    want = (y.shape[0],) + tuple(den.shape)
    if tuple(x.shape) != want:
        raise ValueError(f"init x_sigma must have shape {want} (one per measurement), got {tuple(x.shape)}")
    return x.detach().to(y.device, y.dtype), float(sigma)


def linearised_guidance_vector(op, x0, y, sigma_t: float, sigma_y: float, iters: int = 50,
                               tol: float = 1e-6) -> torch.Tensor:
    """``cg_guidance_vector`` for an operator known only by its forward map: A is linearised at
    x0, A(x) ~ A(x0) + J_A (x - x0), J_A = dA/dx at x0 (autograd), and the same CG solve runs with
    J_A in place of A: J_A^T (J_A J_A^T + c I)^-1 (y - A(x0)) (a Gauss-Newton step of the
    Pi-GDM guidance).  J_A^T v is one VJP through the operator, J_A w the derivative of the linear
    map u -> J_A^T u (a double VJP), so no adjoint and no forward-mode AD are needed.  For a linear
    operator it is ``cg_guidance_vector`` exactly (J_A = A)."""
    r2 = sigma_t ** 2 / (1.0 + sigma_t ** 2)
    c = float(sigma_y) ** 2 / r2
    with torch.enable_grad():
        xr = x0.detach().requires_grad_(True)
        out = op(xr)
        u = torch.zeros_like(out, requires_grad=True)
        (jtu,) = torch.autograd.grad(out, xr, grad_outputs=u, create_graph=True)

        def vjp(v):
            return torch.autograd.grad(out, xr, grad_outputs=v, retain_graph=True)[0]

        def jvp(w):
            return torch.autograd.grad(jtu, u, grad_outputs=w, retain_graph=True)[0]

        resid = (y - out).detach()
        sol = batched_cg(lambda v: jvp(vjp(v)) + c * v, resid, iters, tol)
        h = vjp(sol)
    return h.detach().reshape(x0.shape)


def mgps_surrogate_vector(op, x0, y, sigma_t: float, sigma_y: float) -> torch.Tensor:
    """MGPS's Pi-GDM guidance for JPEG: the residual y - A(x0) itself, i.e. the gradient of
    <stop_grad(y - A(x0)), x0>: the operator's pseudo-inverse taken as the identity (the
    measurement is an image: a decoded JPEG), with no noise term (MGPS@7839182
    src/posterior_samplers/pgdm.py, its JPEG branch).  Needs y of the image's shape."""
    if tuple(y.shape[1:]) != tuple(x0.shape[1:]):
        raise ValueError(f"gdm nonlinear='mgps' takes the operator's pseudo-inverse as the identity, "
                         f"which needs measurements shaped like the image {tuple(x0.shape[1:])}, got "
                         f"{tuple(y.shape[1:])}; use nonlinear='jacobian'")
    with torch.no_grad():
        return (y - op(x0)).reshape(x0.shape)


def pgdm_steps(x, sigmas, y, op, den, sigma_y, generator, eta: float = 1.0, weight: float = 1.0,
               guidance=pgdm_guidance_vector, weight_of=None):
    """Run PGDM from x (at sigmas[0]) down the descending grid ``sigmas``; returns the last state.

    sigmas: a sequence of floats; a final 0 means the last step returns x0 + weight * g (clean).
    weight_of: optional (sigma_t, sigma_s) -> weight, in place of the constant ``weight``.
    """
    sigmas = [float(v) for v in sigmas]
    x = x.detach()
    for st, ss in zip(sigmas[:-1], sigmas[1:]):
        xg, x0 = denoise_vjp(den, x, st)
        h = guidance(op, x0.detach(), y, st, sigma_y)
        (g,) = torch.autograd.grad(x0, xg, grad_outputs=h)
        w = weight if weight_of is None else weight_of(st, ss)
        with torch.no_grad():
            x = ddim_step(x, x0.detach(), st, ss, eta, generator) + w * g
    return x.detach()


@register("pgdm")
class PGDM(Solver):
    defaults = dict(steps=1000, eta=1.0, weight=1.0, schedule="vp_uniform", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "svd"})
    accepts_init = True

    def guidance(self, op, x0, y, sigma_t, sigma_y):
        return pgdm_guidance_vector(op, x0, y, sigma_t, sigma_y)

    def weight_of(self, op):
        return None

    def solve(self, y, op, den, sigma_y, generator, init=None):
        p = self.p
        if init is None:
            sigmas = grid_from(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho) + [0.0]
            x = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        else:
            x, s0 = check_init(init, y, den)
            sigmas = grid_from(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho, s0) + [0.0]
        return pgdm_steps(x, sigmas, y, op, den, sigma_y, generator, p.eta, p.weight,
                          guidance=self.guidance, weight_of=self.weight_of(op))


@register("gdm")
class GDM(PGDM):
    """Pi-GDM without an SVD.  Operators with an adjoint: the guidance's linear solve by conjugate
    gradients (``cg_guidance_vector``, ``cg_iters`` steps at most); equal to ``pgdm`` where both
    apply (tests/test_samplers.py).

    Operators with a forward map only (nonlinear ones: ``jpeg``, for MGPS Table 2's PGDM on JPEG),
    by ``nonlinear``:
    * ``"jacobian"`` (default): the operator linearised at the current x0-hat by autograd and the
      same CG solve (``linearised_guidance_vector``); for a linear operator it equals the adjoint
      path.  On ``jpeg`` with the straight-through rounding J_A is the identity wherever no pixel
      is clipped (DCT, quantisation step and colour transform cancel), so the vector is
      (y - A(x0)) / (1 + c), c = sigma_y^2 / r_t^2: MGPS's surrogate with the noise term kept.
    * ``"mgps"``: MGPS's JPEG path as its code runs it (``mgps_surrogate_vector``: the residual
      y - A(x0), no noise term) with its step weight sqrt(abar_t) in VP units, which is
      sqrt(1 + sigma_s^2) in VE units (the VP -> VE rule: a VP step c grad_{x_t^VP} is
      c / sqrt(abar_t abar_s) grad_{x^VE}; Pi-GDM's own weight sqrt(abar_t abar_s) is 1).
    MGPS App. D.2 reports that on JPEG the guidance "worsens the performance"; both are here so
    that the table's PGDM-on-JPEG cell can be regenerated ("mgps") and compared ("jacobian").
    Cost: 1 NFE + 1 VJP through the denoiser per step, plus per CG step one VJP and one double
    VJP through the operator (not counted: they are not network passes of the prior)."""
    defaults = dict(PGDM.defaults, cg_iters=50, nonlinear="jacobian")
    needs = frozenset({"forward"})

    def _nonlinear_path(self, op) -> bool:
        return not ("adjoint" in op.provides and getattr(op, "linear", True))

    def guidance(self, op, x0, y, sigma_t, sigma_y):
        if not self._nonlinear_path(op):
            return cg_guidance_vector(op, x0, y, sigma_t, sigma_y, iters=self.p.cg_iters)
        if self.p.nonlinear == "mgps":
            return mgps_surrogate_vector(op, x0, y, sigma_t, sigma_y)
        return linearised_guidance_vector(op, x0, y, sigma_t, sigma_y, iters=self.p.cg_iters)

    def weight_of(self, op):
        if self.p.nonlinear not in ("jacobian", "mgps"):
            raise ValueError(f"gdm: nonlinear must be 'jacobian' or 'mgps', got {self.p.nonlinear!r}")
        if self._nonlinear_path(op) and self.p.nonlinear == "mgps":
            w = float(self.p.weight)
            return lambda st, ss: w * math.sqrt(1.0 + ss ** 2)
        return None
