"""A dataset's prior with a consistency model beside its denoiser (config
``datasets.<d>.consistency: {name: ..., params: {...}}``; dipbench/pipeline.py ``build_prior``).

``WithConsistency(denoiser, cm)`` is the denoiser for every purpose (calls, shape, sigma range,
exact helpers, device) and adds the consistency interface taken from ``cm``:
``consistency(x, sigma) -> x0_hat`` (the one-step map f of a consistency model) and
``consistency_sigma_min`` (the level where f is the identity).  MAP-GA uses both networks: f for
its one-step estimate and the denoiser for the prior term and PGDM.
"""
from __future__ import annotations


class WithConsistency:
    def __init__(self, denoiser, cm):
        if not callable(getattr(cm, "consistency", None)) or not hasattr(cm, "consistency_sigma_min"):
            raise TypeError(f"{type(cm).__name__} is not a consistency model: it needs "
                            f"`consistency(x, sigma)` and `consistency_sigma_min`")
        ds, cs = tuple(getattr(denoiser, "shape", ())), tuple(getattr(cm, "shape", ()))
        if ds and cs and ds != cs:
            raise ValueError(f"the consistency model's shape {cs} differs from the denoiser's {ds}")
        self.denoiser, self.cm = denoiser, cm

    def __call__(self, x, sigma):
        return self.denoiser(x, sigma)

    def consistency(self, x, sigma):
        return self.cm.consistency(x, sigma)

    @property
    def consistency_sigma_min(self) -> float:
        return float(self.cm.consistency_sigma_min)

    def __getattr__(self, name):        # shape, sigma_min, sigma_max, exact helpers, device, ...
        if name in ("denoiser", "cm"):  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.denoiser, name)

    @property
    def class_label(self):
        """True when either network takes each image's class (the pipeline then requires labels)."""
        labs = [getattr(m, "class_label", None) for m in (self.denoiser, self.cm)]
        return True if True in labs else labs[0]

    def set_labels(self, labels) -> None:
        """Hand a batch's class labels to both networks (either may be class-conditional)."""
        for m in (self.denoiser, self.cm):
            if hasattr(m, "set_labels"):
                m.set_labels(labels)

    def to(self, device) -> "WithConsistency":
        for m in (self.denoiser, self.cm):
            if hasattr(m, "to"):
                m.to(device)
        return self
