"""Adam written out for solvers that optimise a tensor of the image's shape (RED-diff's mu).

The same update as ``torch.optim.Adam`` (no weight decay, no amsgrad; torch's single-tensor path):
    m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
Why not torch.optim: constructing the first optimiser of a process imports torch._dynamo (measured
5-40 s on the shared 2-core machine, 100 MB), which dominated a RED-diff solve's time outside the
network (overhead 2.3 at batch 1, benchmarks/perf.py); the update itself is a few elementwise ops.
"""
from __future__ import annotations

import math

import torch


class ElementwiseAdam:
    def __init__(self, params: list[torch.Tensor], lr, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lrs = list(lr) if isinstance(lr, (list, tuple)) else [lr] * len(params)
        self.b1, self.b2 = float(betas[0]), float(betas[1])
        self.eps = eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Update the parameters in place with their gradients."""
        self.t += 1
        bc1, bc2 = 1 - self.b1 ** self.t, math.sqrt(1 - self.b2 ** self.t)
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.lrs):
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            p.addcdiv_(m, (v.sqrt() / bc2).add_(self.eps), value=-lr / bc1)
