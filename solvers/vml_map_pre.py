"""VML-MAP_pre: VML-MAP with a step preconditioned by the operator's SVD (H = U diag(s) V^T).

The paper's exact form was lost; this one is derived here from three requirements:
(i) the fixed points must stay those of VML-MAP (so the answer is still the exact MAP on a
Gaussian prior), (ii) it must be VML-MAP itself for inpainting, where H^T H is a 0/1 diagonal,
(iii) it must stay inside the curvature bound that makes VML-MAP stable.

Derivation.  Plain VML-MAP takes x <- x - eta grad with one scalar
eta = c / (S^2/sy^2 + 1/(4 s^2)), S = ||H||: the denominator bounds the curvature of the loss in
every direction at once, so the data term of the *largest* singular value sets the step for all
of them.  In x0-space VML_S is the negative log posterior (vml_map.py), whose data Hessian is
V diag(s_j^2 / sy^2) V^T; the prior part seen through the denoiser is bounded by 1/(4 s^2).  A
diagonal Gauss-Newton step in H's spectral basis, damped by that prior bound, uses per
coefficient j the inverse of its own curvature (H^T H / sy^2 + I / (4 s^2))^-1:

    tau_j = c / (max(s_j^2, S^2/G) / sy^2 + 1/(4 s^2))    for j in range(H^T)   (s_j > 0),
    tau_0 = c / (S^2 / sy^2 + 1/(4 s^2)) = eta             on the null space of H,

    x <- x - V diag(tau) V^T grad,      grad = J^T g  as in VML-MAP,

with G = ``max_gain``.  Why the floor S^2/G and why the null space keeps eta: the denoiser's
Jacobian J couples spectral directions (for 0 <= J <= I an off-diagonal block has norm <= 1/2),
so a direction with a small s_j also sees the curvature of the large ones through J; the step
it may take is not its own Gauss-Newton value.  Without knowing J the only safe statement is
the global one: the Hessian of VML_S in x is <= (S^2/sy^2 + 1/(4 s^2)) I, so the preconditioned
iteration is stable when max_j tau_j (S^2/sy^2 + 1/(4 s^2)) < 2, and
max_j tau_j (S^2/sy^2 + 1/(4 s^2)) <= c G.  Hence c G < 2 guarantees stability whatever J is;
the default G = 1.9 with c = 1 does.  (Measured on a random 3x32x32 Gaussian prior, deblurring,
sy = 0.01: G = 4 was still stable, G = inf, i.e. the undamped Gauss-Newton step, diverged.)
The null space gets s_j = 0 < S^2/G, i.e. tau = c/(S^2/(G sy^2) + 1/(4 s^2)) would be allowed by
the bound too; it keeps eta so that requirement (ii) holds (see below).  Properties:

* V diag(tau) V^T is symmetric positive definite, so the fixed points (J^T g = 0) are unchanged
  and -V diag(tau) V^T grad is a descent direction: requirement (i).
* Inpainting: every s_j = 1 = S, so tau_j = tau_0 = eta: the step is VML-MAP's, to float
  rounding (V is a permutation): requirement (ii).  The same holds for any operator whose
  non-zero singular values are all equal: DDRM's block-average super-resolution has s_j = 1/f
  for all j, so **for sr_block this preconditioner is exactly VML-MAP** (see the note below).
* Directions with s_j < S get up to G times VML-MAP's step (deblurring, whose singular values
  run from 1 down to the threshold), which is where VML-MAP is slow.

Note on super-resolution.  Any preconditioner built from H's SVD that is the identity for a
0/1 spectrum (requirement ii) and treats equal singular values equally is a multiple of the
identity for block-average SR (all s_j equal), and the multiple is fixed by the stability
bound; so no SVD preconditioner of this kind can beat VML-MAP on sr_block without giving up
(ii) or (iii).  What limits VML-MAP there is the prior's conditioning, not the operator's
(large-variance null-space directions have curvature ~1/e << 1/(4 s^2) at the last levels);
benchmarks/map_convergence.py shows both curves.  Even with a spread spectrum (``sr_bicubic``,
singular values ~0.5 .. 0.24 at x2) the gain does not appear: the data curvature S^2/sy^2 is
small for SR (S^2 <= 1/4), so the bound 1/(4 s^2) of the prior part dominates the step on every
level s < sy/(2S) (0.1 at x2, 0.2 at x4 with sy = 0.05), i.e. on all the levels that decide the
answer, and there tau_j ~ tau_0 ~ 4 c s^2 whatever s_j is.  Measured (random prior, 3x32x32,
(20, 50), sy = 0.05): sr_bicubic x4 relative MAP error 0.0589/0.0619 for both methods, on the
range of H^T 0.0315/0.0299 for both; deblurring (S = 1, data curvature 400): range 0.097 ->
0.080, overall 0.132 -> 0.119.

Cost: as VML-MAP (the SVD maps are applied to the gradient once per step, no denoiser calls).
"""
from __future__ import annotations

import torch

from .registry import register
from .vml_map import VMLMAP


def spectral_steps(op, sy: float, sigma: float, lr_scale: float, max_gain: float):
    """(tau on the first k coefficients, tau_0 on the null space) as above."""
    s2 = op.singulars().double() ** 2
    top = op.norm_sq()
    prior = 1.0 / (4 * sigma ** 2)
    floor = top / max_gain if max_gain and max_gain != float("inf") else 0.0
    tau = lr_scale / (s2.clamp_min(floor) / sy ** 2 + prior)
    tau0 = lr_scale / (top / sy ** 2 + prior)
    return tau.float(), float(tau0)


@register("vml_map_pre")
class VMLMAPPre(VMLMAP):
    defaults = dict(VMLMAP.defaults, max_gain=1.9)
    needs = frozenset({"forward", "adjoint", "svd"})

    def make_stepper(self, op, sy, sigma, eta):
        tau, tau0 = spectral_steps(op, sy, sigma, self.p.lr_scale, self.p.max_gain)
        tau = tau.to(op._device())
        k = tau.numel()

        def step(grad):
            c = op.Vt(grad)
            c = torch.cat([c[:, :k] * tau, c[:, k:] * tau0], dim=1)
            return op.V(c).reshape(grad.shape)
        return step
