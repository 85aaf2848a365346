"""Dataset protocol: stable ``ids`` and ``load(ids) -> (N, C, H, W)`` float32 in [-1, 1]."""
from __future__ import annotations

import torch


class Dataset:
    shape: tuple = ()

    @property
    def ids(self) -> list[str]:
        raise NotImplementedError

    def load(self, ids=None) -> torch.Tensor:
        raise NotImplementedError

    def subset(self, n: int | None) -> list[str]:
        ids = self.ids
        if n is None:
            return list(ids)
        if n > len(ids):
            raise ValueError(f"{type(self).__name__} has {len(ids)} images, {n} requested")
        return list(ids[:n])


def uint8_to_unit(img) -> torch.Tensor:
    """HWC uint8 -> CHW float32 in [-1, 1]."""
    t = torch.as_tensor(img).float()
    return (t / 127.5 - 1.0).permute(2, 0, 1).contiguous()
