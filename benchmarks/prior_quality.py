"""Quality check of the trained prior: denoising MSE vs the fitted Gaussian prior, plus samples.

    python benchmarks/prior_quality.py --out-dir results/prior_quality [--weights ...] [--steps 32]

On the skimage32 test images (data.build('skimage32').load()), both priors denoise the same
images with the same seeded noise x + sigma n at sigma in {0.05, 0.1, 0.2, 0.5, 1.0}; the table
gives the mean squared error per pixel (images in [-1, 1]).  The Gaussian's denoiser is the exact
posterior mean under its own (fitted) model, so beating it means the network learned structure
beyond second-order statistics.  Then a grid of unconditional samples from the trained prior is
drawn with the deterministic EDM Heun sampler (Karras et al. 2022, Algorithm 1 without churn)
on the EDM time grid, written to ``<out-dir>/edm_unet_samples.png``; ``mse.csv`` holds the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0)


def denoising_mse(prior, x: torch.Tensor, sigmas=SIGMAS, seed: int = 0, batch: int = 64) -> list[float]:
    """Mean per-pixel MSE of D(x + sigma n, sigma) against x; noise from a generator seeded per level."""
    out = []
    for k, s in enumerate(sigmas):
        g = torch.Generator().manual_seed(seed * 1000 + k)
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        err = 0.0
        with torch.no_grad():
            for i in range(0, x.shape[0], batch):
                xb = x[i: i + batch]
                d = prior(xb + s * noise[i: i + batch], s)
                err += float(((d - xb) ** 2).sum())
        out.append(err / x.numel())
    return out


def heun_sample(denoiser, n: int, steps: int = 32, generator=None, sigma_min: float = 0.002,
                sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Deterministic EDM sampler: Heun's 2nd-order steps on dx/dsigma = (x - D(x, sigma)) / sigma."""
    from dipbench.schedule import edm_sigmas

    shape = tuple(denoiser.shape)
    sig = edm_sigmas(steps, sigma_min, sigma_max, rho).tolist() + [0.0]
    x = torch.randn((n, *shape), generator=generator) * sig[0]
    with torch.no_grad():
        for s, s_next in zip(sig[:-1], sig[1:]):
            d = (x - denoiser(x, s)) / s
            x_next = x + (s_next - s) * d
            if s_next > 0:                                   # 2nd-order correction
                d2 = (x_next - denoiser(x_next, s_next)) / s_next
                x_next = x + (s_next - s) * 0.5 * (d + d2)
            x = x_next
    return x


def save_grid(x: torch.Tensor, path: Path, nrow: int = 8, pad: int = 2) -> None:
    import numpy as np
    from PIL import Image

    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    rows = (n + nrow - 1) // nrow
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h,
               pad + q * (w + pad): pad + q * (w + pad) + w] = x[i].permute(1, 2, 0).numpy()
    img = Image.fromarray(canvas).resize((canvas.shape[1] * 3, canvas.shape[0] * 3), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--weights", default=None, help="trained weights (default: the committed file)")
    p.add_argument("--steps", type=int, default=32, help="Heun sampler steps (2 NFE each, last 1)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    import data
    import priors

    x = data.build("skimage32").load()
    trained = priors.build("edm_unet", **({"weights": a.weights} if a.weights else {}))
    gauss = priors.build("gaussian_fit")
    m_t = denoising_mse(trained, x, seed=a.seed)
    m_g = denoising_mse(gauss, x, seed=a.seed)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["sigma,mse_edm_unet,mse_gaussian_fit,ratio"]
    print(f"denoising MSE on {x.shape[0]} skimage32 test images (pixels in [-1, 1])")
    print(f"{'sigma':>6} {'edm_unet':>10} {'gaussian':>10} {'ratio':>6}  better")
    for s, a_, b_ in zip(SIGMAS, m_t, m_g):
        print(f"{s:6.2f} {a_:10.5f} {b_:10.5f} {a_ / b_:6.3f}  {'yes' if a_ < b_ else 'NO'}")
        lines.append(f"{s},{a_:.6g},{b_:.6g},{a_ / b_:.4f}")
    (out / "mse.csv").write_text("\n".join(lines) + "\n")
    samples = heun_sample(trained, a.samples, a.steps, torch.Generator().manual_seed(a.seed))
    save_grid(samples, out / "edm_unet_samples.png")
    print(f"samples ({a.samples}, Heun {a.steps} steps, {2 * a.steps - 1} NFE): "
          f"{out / 'edm_unet_samples.png'}")
    return 0 if all(u < v for u, v in zip(m_t, m_g)) else 1


if __name__ == "__main__":
    sys.exit(main())
