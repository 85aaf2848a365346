"""Seeds from a stable hash of names: never global RNG state (CONTRIBUTING.md, conventions)."""
from __future__ import annotations

import hashlib

import torch


def stable_seed(*names) -> int:
    """A 63-bit integer from the names, identical on every machine and Python version."""
    key = "|".join(str(n) for n in names).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def generator(*names, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stable_seed(*names))
    return g


def randn(shape, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Standard normal draws on the generator's own device."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
