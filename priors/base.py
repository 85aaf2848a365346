"""Denoiser protocol in the EDM / VE convention: D(x, sigma) ~ E[x0 | x0 + sigma n = x]."""
from __future__ import annotations

import torch


def sigma_column(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma (float, 0-d or (B,) tensor) as a (B, 1) tensor on x's device and dtype."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    return s.reshape(-1, 1)


EXACT_SIGMA_RANGE = (0.0, float("inf"))     # (sigma_min, sigma_max) of the analytic priors


class Denoiser:
    """Base for priors. Subclasses set ``shape`` and implement ``denoise(x, sigma)``.

    ``sigma_min`` / ``sigma_max`` is the range of noise levels the denoiser is valid on; solvers clip
    their grids to it (``dipbench.schedule.grid``, ``clip_to_prior``).  The defaults are those of a
    trained network (EDM's 80 at the top); analytic priors are exact at every sigma and declare the
    whole range (``EXACT_SIGMA_RANGE``), so a solver's grid reaches them unclipped (e.g. MGPS's VP
    grid up to sigma = 157, DAPS's sigma_max = 100).
    """
    shape: tuple = ()
    sigma_min: float = 1e-3
    sigma_max: float = 80.0
    exact: bool = False          # analytic priors with closed-form posteriors set this

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise ValueError(f"{type(self).__name__}: input must be (B, {', '.join(map(str, self.shape))}),"
                             f" got {tuple(x.shape)}")
        return self.denoise(x, sigma)

    def denoise(self, x, sigma):
        raise NotImplementedError

    def to(self, device) -> "Denoiser":
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
            elif isinstance(v, torch.nn.Module):
                v.to(device)
        return self

    @property
    def device(self) -> torch.device:
        for v in vars(self).values():
            if isinstance(v, torch.Tensor):
                return v.device
        return torch.device("cpu")
