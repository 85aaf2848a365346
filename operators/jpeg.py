"""Differentiable JPEG-like compression (nonlinear): y = decode(quantise(encode(x))), y shape = x shape.

Written from the JPEG baseline description (ITU-T T.81 / JFIF), per image in [-1, 1]:
 1. pixels p = (x + 1) * 127.5 in [0, 255] (no rounding to 8 bits);
 2. RGB -> YCbCr (JFIF): Y = .299 R + .587 G + .114 B, Cb = 128 - .168736 R - .331264 G + .5 B,
    Cr = 128 + .5 R - .418688 G - .081312 B (a 1-channel image is treated as Y alone);
    optional 4:2:0 chroma subsampling (``subsample=True``: 2x2 means of Cb and Cr, repeated back
    after decoding; H and W must then be multiples of 16);
 3. level shift by -128, orthonormal 8x8 DCT-II per block (identical to JPEG's
    F(u,v) = 1/4 C(u) C(v) sum f cos cos);
 4. quantisation: q = rounding(F / T) * T with the standard tables of T.81 Annex K (luminance for Y,
    chrominance for Cb/Cr) scaled by the quality factor as the IJG library does
    (scale = 5000 / Q for Q < 50, 200 - 2 Q otherwise; T_Q = floor((T * scale + 50) / 100) clipped to
    [1, 255]).  ``table_clip=False`` gives DiffJPEG's real-valued T * scale / 100 without clipping
    (the JPEG(QF) task of MGPS, which uses DiffJPEG; needs Q < 100);
 5. inverse DCT, +128, YCbCr -> RGB (the exact inverse matrix), clipped to [0, 255] like a decoder
    (``clip=False`` to skip), back to [-1, 1].
Rounding is replaced by a differentiable surrogate: ``rounding="ste"`` (default) is the exact
round in the forward pass with identity gradient, x + (round(x) - x).detach();
``rounding="cubic"`` is DiffJPEG's round(x) + (x - round(x))^3 (not exact rounding forward).
Default quality 2 (MGPS's JPEG task).  H and W must be multiples of 8 (16 with ``subsample``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Operator, OperatorShapeError
from .registry import register

LUMA_TABLE = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
CHROMA_TABLE = [
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
] + [[99] * 8 for _ in range(4)]

RGB_TO_YCBCR = [
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
]


def quality_table(table, quality: float, clip: bool = True) -> torch.Tensor:
    """Scale a base quantisation table by the quality factor (IJG rule; see module doc)."""
    q = float(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"jpeg: quality must be in [1, 100], got {quality}")
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    t = torch.tensor(table, dtype=torch.float64)
    if clip:
        return torch.floor((t * scale + 50.0) / 100.0).clamp(1.0, 255.0)
    if scale <= 0:
        raise ValueError("jpeg: table_clip=False (DiffJPEG's tables) needs quality < 100")
    return t * scale / 100.0


def dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (rows = frequencies): coefficients = D @ block @ D^T."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def ste_round(x):
    return x + (torch.round(x) - x).detach()


def cubic_round(x):
    r = torch.round(x)
    return r + (x - r) ** 3


class JPEG(Operator):
    def __init__(self, shape, quality: float = 2, rounding: str = "ste", subsample: bool = False,
                 table_clip: bool = True, clip: bool = True):
        shape = tuple(shape)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise OperatorShapeError(f"jpeg needs an image shape (1 or 3, H, W), got {shape}")
        c, h, w = shape
        subsample = bool(subsample) and c == 3
        mult = 16 if subsample else 8
        if h % mult or w % mult:
            raise OperatorShapeError(
                f"jpeg: image height and width must be multiples of {mult}"
                f"{' (chroma subsampling)' if subsample else ''}, got {h}x{w}")
        if rounding not in ("ste", "cubic"):
            raise ValueError(f"jpeg: rounding must be 'ste' or 'cubic', got {rounding!r}")
        self.quality, self.rounding, self.subsample, self.clip = float(quality), rounding, subsample, clip
        self.luma_q = quality_table(LUMA_TABLE, quality, table_clip).float()
        self.chroma_q = quality_table(CHROMA_TABLE, quality, table_clip).float()
        self.D = dct_matrix(8).float()
        m = torch.tensor(RGB_TO_YCBCR, dtype=torch.float64)
        self.M = m.float()
        self.Minv = torch.linalg.inv(m).float()
        super().__init__(shape, shape)

    # 8x8 block transform -------------------------------------------------------------------
    def _code(self, ch, table):
        """Level-shifted channel (B, h, w) -> quantised/dequantised reconstruction (B, h, w)."""
        b, h, w = ch.shape
        blk = ch.reshape(b, h // 8, 8, w // 8, 8).transpose(2, 3)     # (B, h/8, w/8, 8, 8)
        d = self.D.to(ch.dtype)
        coef = d @ blk @ d.T
        t = table.to(ch.dtype)
        rnd = ste_round if self.rounding == "ste" else cubic_round
        coef = rnd(coef / t) * t
        blk = d.T @ coef @ d
        return blk.transpose(2, 3).reshape(b, h, w)

    def forward(self, x):
        p = (x + 1.0) * 127.5
        if self.x_shape[0] == 1:
            out = self._code(p[:, 0] - 128.0, self.luma_q)[:, None] + 128.0
        else:
            ycc = torch.einsum("kc,bchw->bkhw", self.M.to(x.dtype), p)
            y = self._code(ycc[:, 0] - 128.0, self.luma_q)
            chroma = ycc[:, 1:]                                        # centred at 0 already
            if self.subsample:
                small = F.avg_pool2d(chroma, 2)
                cs = [self._code(small[:, i], self.chroma_q) for i in range(2)]
                chroma = torch.stack(cs, 1).repeat_interleave(2, -2).repeat_interleave(2, -1)
            else:
                chroma = torch.stack([self._code(chroma[:, i], self.chroma_q) for i in range(2)], 1)
            ycc = torch.cat([y[:, None] + 128.0, chroma], 1)
            out = torch.einsum("ck,bkhw->bchw", self.Minv.to(x.dtype), ycc)
        if self.clip:
            out = out.clamp(0.0, 255.0)
        return out / 127.5 - 1.0


@register("jpeg")
def jpeg(shape, quality: float = 2, rounding: str = "ste", subsample: bool = False,
         table_clip: bool = True, clip: bool = True):
    return JPEG(shape, quality, rounding, subsample, table_clip, clip)
