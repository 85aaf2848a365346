"""Figure: one image under every degradation task (a PNG grid drawn on a matplotlib Agg canvas).

``degradations_figure(image, ops, path)``: ``image`` is (C, H, W) in [-1, 1]; ``ops`` maps a task
name to ``(operator, y)`` with y of shape (1, *y_shape) (a measurement of ``image``, noisy or not).
Each panel shows the measurement in picture form:
  * y itself when it has the image's shape (blurs, HDR, JPEG);
  * the pseudo-inverse A^+ y for SVD operators whose y is not image-shaped (inpainting: missing
    pixels at 0 = mid-grey; block-average SR: each value repeated over its block; colorization:
    the grey value on every channel) -- A^T y would shrink these by the singular values;
  * otherwise ``op.to_image(y)`` when it gives a picture;
  * otherwise, for image-like y (C', H', W'), log10(|y| / max|y| + 1e-4) mapped to [0, 1] (four
    decades below the peak), e.g. the Fourier magnitude of phase retrieval (zero frequency at the
    centre);
  * otherwise a text panel with y's shape.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch


def _to_unit(img: torch.Tensor) -> torch.Tensor:
    """(C, H, W) in [-1, 1] -> (H, W, C) or (H, W) in [0, 1] for imshow."""
    img = ((img.detach().float().cpu().clamp(-1, 1) + 1) / 2)
    return img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)


def _log_magnitude(y: torch.Tensor) -> torch.Tensor:
    a = y.detach().float().cpu().abs()
    m = torch.log10(a / a.max().clamp_min(1e-30) + 1e-4)      # 4 decades below the peak
    m = ((m + 4) / 4).clamp(0, 1)
    if m.shape[0] == 3:
        return m.permute(1, 2, 0)
    return m.mean(0)


def measurement_picture(op, y: torch.Tensor):
    """(array for imshow, kind) for one measurement y of shape (1, *y_shape); kind is 'image',
    'magnitude' or 'none'."""
    x_shape = tuple(op.x_shape)
    if tuple(y.shape[1:]) == x_shape:
        return _to_unit(y[0]), "image"
    with torch.no_grad():
        if "svd" in getattr(op, "provides", ()):
            return _to_unit(op.pinv(y)[0]), "image"
        img = op.to_image(y)
    if img is not None and tuple(img.shape[1:]) == x_shape:
        return _to_unit(img[0]), "image"
    if y.ndim == 4:
        return _log_magnitude(y[0]), "magnitude"
    return None, "none"


def degradations_figure(image: torch.Tensor, ops: dict, path, ncols: int = 6, panel_in: float = 2.2):
    """Save a grid: the clean image, then every task's measurement; returns the Path written."""
    # an explicit Agg canvas: no pyplot state, no global backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("original", _to_unit(image), "image")]
    for name, (op, y) in ops.items():
        if y.ndim == len(op.y_shape):
            y = y.unsqueeze(0)
        arr, kind = measurement_picture(op, y)
        label = name + (" (log |y|)" if kind == "magnitude" else "")
        panels.append((label, arr if arr is not None else tuple(y.shape[1:]), kind))

    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel_in * ncols, panel_in * nrows + 0.3))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, arr, kind) in zip(axes.flat, panels):
        if kind == "none":
            ax.text(0.5, 0.5, f"y shape\n{arr}", ha="center", va="center", fontsize=9)
        else:
            a = arr.numpy()
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
