"""A writer of EDM release pickles (dipbench's own code, for fixtures and tests).

It lays the bytes out as NVlabs/edm@008a4e5 writes them, field by field, except that the module
source text is replaced by ``PLACEHOLDER_SRC`` (the official pickle embeds the source of
training/networks.py, which must not be committed):

* a persistent object pickles as the reduce tuple ``(_reconstruct_persistent_obj, (meta,), None)``
  (torch_utils/persistence.py:123-131), where ``_reconstruct_persistent_obj`` is the global
  ``torch_utils.persistence._reconstruct_persistent_obj`` and
  ``meta = dict(type='class', version=6, module_src=..., class_name=..., state=...)`` (line 127,
  ``_version = 6`` at line 26);
* ``state`` is the object's ``__dict__`` (object.__reduce__'s third field, taken by line 124), so it
  holds torch.nn.Module's bookkeeping (``training``, ``_parameters``, ``_buffers``,
  ``_non_persistent_buffers_set``, ``_modules``, the hook dicts), the plain attributes the class
  sets, and ``_init_args`` / ``_init_kwargs`` recorded by the decorator (lines 107-109);
* non-persistent torch containers (``torch.nn.ModuleDict`` holding the U-Net blocks) pickle the
  plain-object way: NEWOBJ of ``torch.nn.modules.container.ModuleDict`` then BUILD with its
  ``__dict__``;
* tensors and parameters pickle through torch's own reducers (``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter``, storages via ``torch.storage._load_from_bytes``);
* the file is ``pickle.dump(dict(ema=..., loss_fn=..., augment_pipe=..., dataset_kwargs=...))``
  (training/training_loop.py:179-188).

Two entry points: ``dump_records`` re-serialises a record tree read by
``priors.edm_pickle.load_release`` (the committed fixture is the official code's pickle passed
through it: same states, placeholder source), and ``records_from_module`` builds a record tree from
a network of ours (init arguments given), for tests that need a fresh file.
"""
from __future__ import annotations

import pickle
import sys
import types

import torch

from priors import edm_pickle

PLACEHOLDER_SRC = "# module source omitted (dipbench fixture, tests/edm_release_writer.py)\n"
PERSISTENT = "torch_utils.persistence"


def _persistence_module():
    """A module object standing in for torch_utils.persistence while pickling: only its name and
    the name of the reconstruct function end up in the file (pickle stores globals by name)."""
    mod = types.ModuleType(PERSISTENT)

    def _reconstruct_persistent_obj(meta):  # never called: loading maps this name elsewhere
        raise AssertionError("fixture writer stand-in")

    _reconstruct_persistent_obj.__module__ = PERSISTENT
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    return mod


class _Persistent:
    def __init__(self, fn, class_name, state, module_src):
        self.fn, self.class_name, self.state, self.module_src = fn, class_name, state, module_src

    def __reduce__(self):                               # persistence.py:123-131
        meta = dict(type="class", version=6, module_src=self.module_src,
                    class_name=self.class_name, state=self.state)
        return (self.fn, (meta,), None)


def _plain_module(cls, state):
    """A non-persistent torch module (ModuleDict, ...) holding ``state`` as its __dict__: pickle's
    default reduce writes it as NEWOBJ(cls) + BUILD(__dict__), as it does for the official one."""
    m = cls.__new__(cls)
    m.__dict__.update(state)
    return m


_CONTAINERS = {"ModuleDict": torch.nn.ModuleDict, "ModuleList": torch.nn.ModuleList,
               "Sequential": torch.nn.Sequential}


def _encode(obj, fn, module_src):
    if isinstance(obj, edm_pickle._ModuleRecord):
        return _plain_module(_CONTAINERS[obj.class_name], _encode(obj.state, fn, module_src))
    if isinstance(obj, edm_pickle._Record):
        return _Persistent(fn, obj.class_name, _encode(obj.state, fn, module_src), module_src)
    if isinstance(obj, dict):
        return type(obj)((k, _encode(v, fn, module_src)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_encode(v, fn, module_src) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_encode(v, fn, module_src) for v in obj)
    return obj


def dump_records(data, file, module_src: str = PLACEHOLDER_SRC, protocol: int = pickle.DEFAULT_PROTOCOL):
    """pickle.dump a release dict whose networks are edm_pickle records, in the release layout."""
    mod = _persistence_module()
    saved = {k: sys.modules.get(k) for k in ("torch_utils", PERSISTENT)}
    sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
    sys.modules[PERSISTENT] = mod
    try:
        pickle.dump(_encode(data, mod._reconstruct_persistent_obj, module_src), file, protocol=protocol)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def records_from_module(module: torch.nn.Module, init_kwargs: dict | None = None, init_args=()):
    """A record tree for a network of ours: every module becomes a persistent record (as every
    EDM network class is decorated persistent) except torch containers; the top level gets
    ``_init_args`` / ``_init_kwargs`` (persistence.py:108-109)."""
    def rec(m, top):
        kids = {k: (rec(v, False) if v is not None else None) for k, v in m._modules.items()}
        state = {k: v for k, v in vars(m).items() if k != "_modules"}
        state["_modules"] = type(m._modules)(kids)
        name = type(m).__name__
        if name in _CONTAINERS:
            r = edm_pickle._container(name)()
            r.state = state
            return r
        if top:
            state["_init_args"], state["_init_kwargs"] = tuple(init_args), dict(init_kwargs or {})
        return edm_pickle._Record(name, state)

    return rec(module, True)
