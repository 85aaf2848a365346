"""Shared pieces for the diffusion samplers, all in the EDM / VE convention (x = x0 + sigma n).

VP <-> VE: abar = 1 / (1 + sigma^2), x_VE = x_VP / sqrt(abar), x0-hat and the
predicted noise eps-hat = (x - D) / sigma are the same in both.  A VP-code additive step
``x_s += c * grad_{x_t^VP} f`` is ``x_s += c / (sqrt(abar_t) sqrt(abar_s)) * grad_{x^VE} f`` in VE
coordinates (``vp_step_to_ve``).

Two "eta" conventions exist and both are here:
* ``ddim_step``  (DDIM-eta): x_s = x0 + sqrt(s^2 - st^2) eps + st z,  st^2 = eta^2 s^2 (t^2 - s^2) / t^2;
  eta = 1 is the DDPM posterior q(x_s | x_t, x0).
* ``ddrm_step``  (DDRM-eta): x_s = x0 + s (sqrt(1 - eta^2) eps + eta z).
"""
from __future__ import annotations

import math

import torch

from dipbench.schedule import clip_to_prior, edm_sigmas, vp_linear_alphas_bar
from .base import noise


# --- conversions ---------------------------------------------------------------------------
def abar_of_sigma(sigma: float) -> float:
    return 1.0 / (1.0 + float(sigma) ** 2)


def sigma_of_abar(abar):
    abar = torch.as_tensor(abar, dtype=torch.float64)
    return ((1 - abar) / abar).sqrt()


def vp_step_to_ve(sigma_t: float, sigma_s: float) -> float:
    """Factor turning a VP-code step on grad_{x_t^VP} (applied to x_s^VP) into a VE step on grad_{x^VE}."""
    return 1.0 / math.sqrt(abar_of_sigma(sigma_t) * abar_of_sigma(sigma_s))


# --- grids ---------------------------------------------------------------------------------
def vp_sigmas_at(timesteps, t_steps: int = 1000, clean_index: bool = False) -> torch.Tensor:
    """VE sigmas of ADM's linear VP schedule at integer timesteps.

    With ``clean_index`` the schedule has a leading abar = 1 (index 0 means sigma = 0), the MGPS
    convention; otherwise index t is the t-th DDPM level (sigma(0) = 0.01).
    """
    ab = vp_linear_alphas_bar(t_steps)
    if clean_index:
        ab = torch.cat([torch.ones(1, dtype=ab.dtype), ab])
    return sigma_of_abar(ab[torch.as_tensor(timesteps, dtype=torch.long)])


def clamp_sigmas(sigmas: torch.Tensor, prior) -> torch.Tensor:
    """Clamp to the prior's range, keeping exact zeros (the terminal 'clean' level)."""
    c = sigmas.clamp(min=float(prior.sigma_min), max=float(prior.sigma_max))
    return torch.where(sigmas == 0, sigmas, c)


def edm_levels(n: int, prior, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    lo, hi = clip_to_prior(sigma_min, sigma_max, prior)
    return edm_sigmas(n, lo, hi, rho)


# --- steps ---------------------------------------------------------------------------------
def ddim_step(x, x0, sigma_t: float, sigma_s: float, eta: float, generator) -> torch.Tensor:
    """VE DDIM step (DDIM-eta convention) from (x at sigma_t, x0-hat) to sigma_s < sigma_t."""
    if sigma_s <= 0:
        return x0
    eps = (x - x0) / sigma_t
    var = eta ** 2 * sigma_s ** 2 * (sigma_t ** 2 - sigma_s ** 2) / sigma_t ** 2
    var = min(max(var, 0.0), sigma_s ** 2)
    out = x0 + math.sqrt(sigma_s ** 2 - var) * eps
    if var > 0:
        out = out + math.sqrt(var) * noise(x.shape, generator)
    return out


def ddrm_step(x0, eps, sigma_s: float, eta: float, generator) -> torch.Tensor:
    """x_s = x0 + sigma_s (sqrt(1 - eta^2) eps + eta z)  (DDRM / DDNM / DiffPIR form)."""
    if sigma_s <= 0:
        return x0
    out = x0 + sigma_s * math.sqrt(max(1 - eta ** 2, 0.0)) * eps
    if eta > 0:
        out = out + sigma_s * eta * noise(x0.shape, generator)
    return out


def denoise_vjp(den, x, sigma):
    """x0 = D(x, sigma) with the graph kept, so that ``torch.autograd.grad(x0, x, v)`` is J^T v."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        x0 = den(x, sigma)
    return x, x0


def euler_pf_ode(den, x, sigmas) -> torch.Tensor:
    """Euler steps of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma along ``sigmas``."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = den(x, s)
        x = x + (s_next - s) * (x - d) / s
    return x


def bshape(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (B,) tensor reshaped to broadcast against x of shape (B, ...)."""
    return v.reshape((-1,) + (1,) * (x.dim() - 1))
