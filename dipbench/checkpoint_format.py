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


class CheckpointReadError(pickle.UnpicklingError):
    """The file could not be unpickled at all (truncated, garbled, not a checkpoint)."""


def read_checkpoint(load, path, *args, **kwargs):
    """``load(path, *args, **kwargs)`` (torch.load or a restricted unpickler) with every failure
    to decode the bytes reported as ``CheckpointReadError``: a garbled pickle can make the
    unpickler raise almost anything (IndexError, KeyError, ValueError, ...).  A missing file and a
    ``CheckpointFormatError`` (a refused global, an unexpected record) pass through unchanged."""
    try:
        return load(path, *args, **kwargs)
    except (FileNotFoundError, CheckpointFormatError):
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure of the bytes is a read failure
        raise CheckpointReadError(f"{path}: {type(e).__name__}: {e}") from e


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
