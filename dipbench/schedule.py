"""Noise-level grids in the EDM / VE convention."""
from __future__ import annotations

import torch


def edm_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               dtype=torch.float64) -> torch.Tensor:
    """EDM's grid sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho, descending."""
    if n < 1:
        raise ValueError(f"need at least one noise level, got n={n}")
    if n == 1:
        return torch.tensor([sigma_max], dtype=dtype)
    i = torch.arange(n, dtype=dtype)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (a + i / (n - 1) * (b - a)) ** rho


def clip_to_prior(sigma_min: float, sigma_max: float, prior) -> tuple[float, float]:
    """Restrict a grid's end points to the range a prior supports."""
    return max(sigma_min, float(prior.sigma_min)), min(sigma_max, float(prior.sigma_max))


def vp_linear_alphas_bar(t_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                         dtype=torch.float64) -> torch.Tensor:
    """alpha-bar of the ADM/DDPM linear beta schedule (index t = 0 .. T-1)."""
    betas = torch.linspace(beta_start, beta_end, t_steps, dtype=dtype)
    return torch.cumprod(1 - betas, 0)


def vp_uniform_sigmas(steps: int, t_steps: int = 1000) -> torch.Tensor:
    """DDRM/DDIM's uniform skip over the linear VP schedule, as VE sigmas (descending)."""
    ab = vp_linear_alphas_bar(t_steps)
    skip = t_steps // steps
    ts = torch.arange(0, t_steps, skip).flip(0)
    return ((1 - ab[ts]) / ab[ts]).sqrt()


def grid(kind: str, steps: int, prior, sigma_min: float = 0.002, sigma_max: float = 80.0,
         rho: float = 7.0) -> torch.Tensor:
    """A descending sigma grid of a named kind, clipped to the prior's range."""
    if kind == "edm":
        lo, hi = clip_to_prior(sigma_min, sigma_max, prior)
        return edm_sigmas(steps, lo, hi, rho)
    if kind == "vp_uniform":
        s = vp_uniform_sigmas(steps)
        return s.clamp(min=float(prior.sigma_min), max=float(prior.sigma_max))
    raise ValueError(f"unknown schedule '{kind}'; choices: edm, vp_uniform")
