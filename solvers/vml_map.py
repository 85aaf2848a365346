"""VML-MAP: per noise level, gradient descent on the simplified variational mode-seeking loss.

VML_S(x) = ||y - H D||^2 / (2 sy^2) - ||x - D||^2 / (2 s^2) - log p_s(x),  D = D(x, s),
whose gradient is one vector-Jacobian product:
    grad = J^T g,   g = H^T (H D - y) / sy^2 + (x - D) / s^2.
Loop: x = s_max n; for each of N levels run K steps x <- x - eta_i grad, then x0 = D(x, s_i) and
renoise x = x0 + s_{i+1} n'.  The last x0 is returned.

Step size: eta_i = c / (||H||^2 / sy^2 + 1 / (4 s_i^2)), a bound on the curvature of the loss
(the prior part of the Hessian peaks at 1/(4 s^2), the data part at ||H||^2 / sy^2), with c the
per-task constant ``lr_scale``.  A fixed eta proportional to sy^2 diverges.
For a noiseless task sy is floored at ``sigma_y_floor`` inside the loss.  The paper's own
learning-rate rule is not in the text this project could read (only its opening is stored).

Levels below sigma_y on a learned prior: there eta ~ 4 s^2, the data term's weight
eta ||H||^2 / sy^2 goes to 0 and each step moves x by ~4 J^T (x - D), so the last levels follow the
network's own estimate at tiny s.  Exact on an exact prior; on a network that is inaccurate at
small s (the embedded U-Net below ~0.02) they drift (measured: colours lost, PSNR -3 dB; more
steps per level make it worse), so a grid can end at ``sigma_min`` = sigma_y
(benchmarks/diagnose_map.py has the record; config/default.yaml does so).

Why it finds the MAP (Gaussian prior N(mu, S), checked in tests/test_map_solvers.py): with
d = D(x, s) = mu + J (x - mu), J = S (S + s^2)^-1, one has x - d = s^2 S^-1 (d - mu) and
-log p_s(x) = (d - mu)^T (S^-1 + s^2 S^-2) (d - mu) / 2 + const, so
VML_S(x) = ||y - H d||^2 / (2 sy^2) + (d - mu)^T S^-1 (d - mu) / 2 + const:
at *every* level the loss, as a function of d, is the negative log posterior, and g is its
gradient in d.  Each level's stationary point has D(x, s) = the exact MAP; what limits accuracy
is how far K steps get towards it after each renoising.

Optional higher-order (trace) terms, off by default (``trace_probes = 0``).  The full loss adds
    T(x) = tr(H C H^T) / (2 sy^2) - tr C / (2 s^2) = tr(M J) / 2,   C = s^2 J,
    M = (s^2 / sy^2) H^T H - I   (constant in x, symmetric).
Hutchinson: tr(M J) = E_v[(M v)^T J v] for v with E[v v^T] = I (Rademacher here), so
    grad T ~= (1/P) sum_p grad_x [ (M v_p)^T J(x) v_p ] / 2 = (1/P) sum_p grad_x [ (J^T u_p) . v_p ] / 2,
u_p = M v_p.  Each probe costs one VJP kept in the graph (J^T u_p, ``create_graph``) and one
backward through that graph (a second-order product of the denoiser).  The estimate is
unbiased for grad T (the expectation and the gradient commute because v does not depend on x);
only its variance depends on P.  The probes are drawn from the solver's generator, so turning
the option on changes the random stream.  For a Gaussian prior J is constant, so grad T = 0
exactly and the option changes nothing but the random stream (tested).  The curvature bound
above does not cover T: its Hessian involves third derivatives of the log-density, and the
factor s^2 / sy^2 makes it large at high noise; use ``clip_norm`` with it on real networks.

Optional gradient clipping, off by default (``clip_norm = None``): each image's gradient
(after the trace terms, before the step size) is rescaled to have an L2 norm of at most
``clip_norm``.

Cost per image: N*K VJPs and N*(K+1) NFEs (trace terms: + P create-graph VJPs and P
double-backward passes per step).
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, data_grad, noise
from .registry import register


def rademacher(shape, generator) -> torch.Tensor:
    r = torch.randint(0, 2, shape, generator=generator, device=generator.device)
    return (2 * r - 1).float()


def clip_per_image(v: torch.Tensor, max_norm) -> torch.Tensor:
    if max_norm is None:
        return v
    n = v.reshape(v.shape[0], -1).norm(dim=1).clamp_min(1e-30)
    scale = (float(max_norm) / n).clamp(max=1.0)
    return v * scale.reshape((-1,) + (1,) * (v.dim() - 1))


def trace_grad(x, d, op, s: float, sy: float, probes: int, generator) -> torch.Tensor:
    """Hutchinson estimate of grad_x tr(M J(x)) / 2, M = (s^2/sy^2) H^T H - I (see module doc).

    ``d`` must be ``den(x, s)`` with the graph to ``x`` kept (x.requires_grad)."""
    out = torch.zeros_like(x)
    for _ in range(probes):
        v = rademacher(x.shape, generator)
        u = (s ** 2 / sy ** 2) * data_grad(op, v, torch.zeros_like(op(v))) - v      # M v
        (w,) = torch.autograd.grad(d, x, grad_outputs=u, create_graph=True, retain_graph=True)
        if w.requires_grad:             # J depends on x (a linear denoiser gives no graph: T = const)
            (h,) = torch.autograd.grad((w * v).sum(), x, retain_graph=True, allow_unused=True)
            if h is not None:
                out = out + h
    return out / (2 * probes)


def vml_level_stats(s, eta, x, d, y, op, sy, gnorms) -> dict:
    """Per-level diagnostics, batch means: the data residual ||H D - y|| / sqrt(m), the loss's data
    part ||y - H D||^2 / (2 sy^2 m) and its -||x - D||^2 / (2 s^2 n) part, the first and last
    gradient norms of the level, and the range of D."""
    with torch.no_grad():
        b = y.shape[0]
        r = (op(d) - y).reshape(b, -1)
        e = (x - d).reshape(b, -1)
        return dict(sigma=float(s), eta=float(eta),
                    residual=float((r.norm(dim=1) / r.shape[1] ** 0.5).mean()),
                    loss_data=float((r ** 2).sum(1).mean() / (2 * sy ** 2 * r.shape[1])),
                    loss_denoise=float(-(e ** 2).sum(1).mean() / (2 * s ** 2 * e.shape[1])),
                    grad_first=gnorms[0] if gnorms else float("nan"),
                    grad_last=gnorms[-1] if gnorms else float("nan"),
                    x0_min=float(d.min()), x0_max=float(d.max()))


@register("vml_map")
class VMLMAP(Solver):
    defaults = dict(steps=20, iters=50, lr_scale=1.0, schedule="edm", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0, sigma_y_floor=1e-3, trace_probes=0, clip_norm=None)
    needs = frozenset({"forward", "adjoint"})

    def step_sizes(self, sigmas, op, sy):
        return self.p.lr_scale / (op.norm_sq() / sy ** 2 + 1.0 / (4 * sigmas ** 2))

    # --- hooks the preconditioned variant overrides -------------------------------------------
    def make_stepper(self, op, sy: float, sigma: float, eta: float):
        """A function grad -> the step subtracted from x at this level."""
        return lambda grad: eta * grad

    def sigma_grid(self, den):
        p = self.p
        return grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()

    def solve(self, y, op, den, sigma_y, generator, trace=None):
        """trace: optional list; per level a dict (level, step, data residual, loss parts, gradient
        norms, range of x0) for diagnosis (benchmarks/diagnose_map.py); no effect on the result."""
        p = self.p
        sy = max(float(sigma_y), p.sigma_y_floor)
        sigmas = self.sigma_grid(den)
        etas = self.step_sizes(torch.tensor(sigmas, dtype=torch.float64), op, sy).tolist()
        shape = (y.shape[0],) + tuple(den.shape)
        x = sigmas[0] * noise(shape, generator)
        x0 = x
        for i, (s, eta) in enumerate(zip(sigmas, etas)):
            step = self.make_stepper(op, sy, s, eta)
            gnorms = []
            for _ in range(p.iters):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    d = den(x, s)
                    g = data_grad(op, d.detach(), y) / sy ** 2 + (x.detach() - d.detach()) / s ** 2
                    extra = (trace_grad(x, d, op, s, sy, int(p.trace_probes), generator)
                             if p.trace_probes else None)
                    (grad,) = torch.autograd.grad(d, x, grad_outputs=g)
                if extra is not None:
                    grad = grad + extra
                grad = clip_per_image(grad, p.clip_norm)
                if trace is not None:
                    gnorms.append(float(grad.reshape(grad.shape[0], -1).norm(dim=1).mean()))
                x = x.detach() - step(grad)
            with torch.no_grad():
                x0 = den(x, s)
            if trace is not None:
                trace.append(vml_level_stats(s, eta, x, x0, y, op, sy, gnorms))
            if i + 1 < len(sigmas):
                x = x0 + sigmas[i + 1] * noise(shape, generator)
        return x0.detach()
