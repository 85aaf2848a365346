"""Errors and checks shared by the checkpoint loaders (priors/*, the deblur_nonlinear operator).

``CheckpointFormatError`` means: the file was read, but its content is not laid out as the loader
expects (a missing or unknown field, a record of an unexpected class, a parameter of the wrong
shape).  The message says what was expected and what was found.  ``dipbench.pipeline.build_prior``
passes it through unchanged: downloading the file again would not help.  Only real read failures
(a truncated or garbled pickle/zip, an I/O error) get the "probably truncated or corrupt" advice.
"""
from __future__ import annotations

import pickle


class CheckpointFormatError(ValueError):
    """A readable checkpoint whose content the loader does not understand (message says what)."""


class RefusedGlobal(CheckpointFormatError, pickle.UnpicklingError):
    """A pickle that names a global outside a loader's allow-list (never resolved, never run)."""


def _short(keys, n: int = 12) -> str:
    keys = list(keys)
    head = ", ".join(map(str, keys[:n]))
    return head + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_state_dict_checked(module, state: dict, what: str) -> None:
    """``module.load_state_dict(state, strict=True)``, with a CheckpointFormatError that names the
    missing / unexpected / mis-shaped entries instead of torch's RuntimeError."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_short(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_short(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} with another shape ({_short(shapes, 4)})")
        raise CheckpointFormatError(f"{what}: the parameters do not match the architecture: "
                                    + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def describe_keys(d, n: int = 12) -> str:
    return _short(sorted(map(str, d.keys())), n) if isinstance(d, dict) else type(d).__name__
