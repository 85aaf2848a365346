"""Read a PyTorch Lightning checkpoint (``trainer.save_checkpoint``) without running its code.

A Lightning checkpoint is a ``torch.save`` zip whose pickle holds, besides ``state_dict``, the
trainer's bookkeeping: callback states (Lightning 1.x keys them by the callback *class*, e.g.
``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``; Lightning 2.x by a string),
``hyper_parameters`` (often OmegaConf ``DictConfig`` / ``ListConfig`` objects, pickled with
``omegaconf.base.ContainerMetadata``, ``omegaconf.nodes.AnyNode``, ``typing.Any``, ...), optimizer
and scheduler states.  ``torch.load(weights_only=True)`` refuses such globals; a plain
``torch.load`` would import Lightning/OmegaConf and let the pickle call into them.

``read_lightning_checkpoint`` uses torch.load's own zip/tensor machinery with a restricted
unpickler (``pickle_module=``): tensors and storages come back as usual; every global under the
Lightning / OmegaConf packages (``LIGHTNING_PACKAGES``) becomes an inert stand-in class (a dict
subclass that stores whatever state the pickle hands it and has no behaviour: nothing from those
packages is imported or called); a short list of harmless builtins and containers resolves to the
real thing; anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a project
class, ...) is refused with ``RefusedGlobal`` naming it.

Globals seen in real checkpoints (written in a scratch environment by the real classes:
Lightning 1.4.2 + OmegaConf 2.1.1, the versions latent-diffusion pins, and Lightning 2.6.6 +
OmegaConf 2.4.0; see tests/fixtures/checkpoints/README.md): ``collections.OrderedDict``,
``collections.defaultdict``, ``__builtin__.dict/list/long``, ``typing.Any``,
``omegaconf.dictconfig.DictConfig``, ``omegaconf.listconfig.ListConfig``,
``omegaconf.base.ContainerMetadata``, ``omegaconf.base.Metadata``, ``omegaconf.nodes.AnyNode``,
``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``, and torch's tensor rebuilders.
"""
from __future__ import annotations

import collections
import functools
import pickle
import types
from pathlib import Path

import torch

from dipbench.checkpoint_format import CheckpointFormatError, RefusedGlobal, read_checkpoint

LIGHTNING_PACKAGES = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf")


class Inert(dict):
    """Stand-in for a Lightning / OmegaConf object: keeps what the pickle gives it, does nothing."""
    qualname = "?"

    def __init__(self, *args, **kwargs):            # REDUCE / NEWOBJ arguments, kept as data
        super().__init__()
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):                  # BUILD
        self.state = state

    def append(self, item):                         # APPENDS on a list subclass
        self.setdefault("_items", []).append(item)

    def extend(self, items):
        self.setdefault("_items", []).extend(items)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return f"<inert {self.qualname}>"


@functools.lru_cache(maxsize=None)
def stand_in(module: str, name: str) -> type:
    return type(name, (Inert,), {"qualname": f"{module}.{name}", "__module__": "priors.lightning_checkpoint"})


_ANY = types.SimpleNamespace(qualname="typing.Any")
_SAFE = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("typing", "Any"): _ANY,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
for _b in ("__builtin__", "builtins"):
    for _n, _t in (("dict", dict), ("list", list), ("tuple", tuple), ("set", set), ("frozenset", frozenset),
                   ("int", int), ("long", int), ("float", float), ("str", str), ("bool", bool),
                   ("object", object)):
        _SAFE[(_b, _n)] = _t
for _dt in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    _SAFE[("torch", _dt)] = getattr(torch, _dt)


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return torch.nn.Parameter(data, requires_grad=False)


_SAFE[("torch._utils", "_rebuild_parameter")] = _rebuild_parameter
_SAFE[("torch._utils", "_rebuild_parameter_with_state")] = _rebuild_parameter


def _numpy_globals():
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    out = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "scalar")] = scalar
        out[(mod, "_reconstruct")] = _reconstruct
    return out


_SAFE.update(_numpy_globals())


class RestrictedUnpickler(pickle.Unpickler):
    """Allow-listed globals; Lightning/OmegaConf names -> inert stand-ins; the rest refused."""
    what = "Lightning checkpoint"

    def find_class(self, module, name):
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module.split(".")[0] in LIGHTNING_PACKAGES:
            return stand_in(module, name)
        raise RefusedGlobal(f"{self.what}: refusing global {module}.{name} (only tensors, plain "
                            f"containers and inert stand-ins for Lightning/OmegaConf objects are read)")


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load
restricted_pickle = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler,
    load=lambda f, **kw: RestrictedUnpickler(f, **kw).load(),
    __name__="priors.lightning_checkpoint.restricted_pickle")


def read_lightning_checkpoint(path) -> dict:
    """The checkpoint as plain data (dicts, tensors, inert stand-ins); never runs its code."""
    obj = read_checkpoint(torch.load, Path(path), map_location="cpu", weights_only=False,
                          pickle_module=restricted_pickle)
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict (a Lightning checkpoint or a state dict); "
                                    f"got {type(obj).__name__}")
    return obj


def is_stand_in(obj) -> bool:
    return isinstance(obj, Inert) or (isinstance(obj, type) and issubclass(obj, Inert)) or obj is _ANY
