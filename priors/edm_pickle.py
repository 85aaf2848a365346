"""EDM release networks (Karras et al. 2022), read from the release pickles without running them.

The release pickles (e.g. ``edm-imagenet-64x64-cond-adm.pkl``) store their networks through
``torch_utils.persistence``: each network object is saved as a call
``_reconstruct_persistent_obj(meta)`` whose ``meta`` carries the *source code* of its module, the
class name and the object's ``__dict__``.  Loading them with ``pickle.load`` would execute that
source.  Here a restricted ``pickle.Unpickler`` (``ReleaseUnpickler``) resolves globals through an
allow-list only:

* ``torch_utils.persistence._reconstruct_persistent_obj`` -> ``_Record.from_meta``: keeps the
  class name and the state, ignores ``module_src`` (never compiled or executed), and refuses a
  class name that is not in ``KNOWN_CLASSES``;
* tensor/storage rebuilders (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, ...)
  and ``torch.storage._load_from_bytes`` -> a version that reads the bytes with
  ``torch.load(weights_only=True)``;
* ``collections.OrderedDict``, ``dnnlib.util.EasyDict`` (-> dict), torch container modules
  (-> records), numpy scalars/dtypes, ``torch.device``/dtypes;

anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
``RefusedGlobal`` (a ``pickle.UnpicklingError`` and a ``CheckpointFormatError``).  The records are
then turned into a flat state dict and the constructor arguments of the top-level network, which
persistence.py records as ``_init_args`` / ``_init_kwargs`` in the object's state; the network is
rebuilt from the implementations below (``EDMPrecond`` + ``DhariwalUNet``, same module names as the
release) and the state dict is loaded strictly.  Any field the loader does not understand (a
record field, a record version other than 6, a constructor argument, a parameter name or shape)
raises ``CheckpointFormatError`` naming it; the field-by-field layout, with the official source
lines, is written above ``_Record`` below and in tests/fixtures/checkpoints/README.md.
"""
from __future__ import annotations

import collections
import functools
import inspect
import io
import math
import pickle
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dipbench.checkpoint_format import (read_checkpoint, CheckpointFormatError, RefusedGlobal, describe_keys,
                                        load_state_dict_checked)

from .base import Denoiser, sigma_column
from .registry import register


# --------------------------------------------------------------------------------------------
# network (EDM's DhariwalUNet / EDMPrecond, re-implemented with the release's module names)
# --------------------------------------------------------------------------------------------
class Conv2d(nn.Module):
    """Optional 2x resampling with a separable [1, 1] filter (avg-pool / nearest), then a conv."""

    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False,
                 resample_filter=(1, 1)):
        super().__init__()
        self.in_channels, self.out_channels, self.up, self.down = in_channels, out_channels, up, down
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel)
                                   / math.sqrt(in_channels * kernel * kernel)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if kernel and bias else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        f = torch.outer(f, f)[None, None] / f.sum() ** 2
        self.register_buffer("resample_filter", f if (up or down) else None)

    def forward(self, x):
        f = self.resample_filter
        if f is not None:
            f = f.to(x.dtype)
            pad = (f.shape[-1] - 1) // 2
            fk = f.tile([self.in_channels, 1, 1, 1])
            if self.up:
                x = F.conv_transpose2d(x, fk * 4, groups=self.in_channels, stride=2, padding=pad)
            if self.down:
                x = F.conv2d(x, fk, groups=self.in_channels, stride=2, padding=pad)
        if self.weight is not None:
            x = F.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        x = x @ self.weight.to(x.dtype).t()
        return x + self.bias.to(x.dtype) if self.bias is not None else x


class GroupNorm(nn.Module):
    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class PositionalEmbedding(nn.Module):
    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x):
        half = self.num_channels // 2
        k = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        a = torch.outer(x.float(), (1.0 / self.max_positions) ** k)
        return torch.cat([a.cos(), a.sin()], dim=1).to(x.dtype)


class UNetBlock(nn.Module):
    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, attention=False,
                 channels_per_head=64, eps=1e-5):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, 3, up=up, down=down)
        self.affine = Linear(emb_channels, 2 * out_channels)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, 3)
        self.skip = None
        if out_channels != in_channels or up or down:
            self.skip = Conv2d(in_channels, out_channels, 1 if out_channels != in_channels else 0,
                               up=up, down=down)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, 3 * out_channels, 1)
            self.proj = Conv2d(out_channels, out_channels, 1)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None, None].to(x.dtype).chunk(2, dim=1)
        x = F.silu(self.norm1(x) * (scale + 1) + shift)
        x = self.conv1(x)
        x = x + (self.skip(orig) if self.skip is not None else orig)
        if self.num_heads:
            b, c, h, w = x.shape
            d = c // self.num_heads
            q, k, v = self.qkv(self.norm2(x)).reshape(b * self.num_heads, d, 3, h * w).unbind(2)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            x = self.proj(a.transpose(1, 2).reshape(b, c, h, w)) + x
        return x


class DhariwalUNet(nn.Module):
    """EDM's re-implementation of the ADM U-Net (``--arch=adm``), module names as in the release."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=192, channel_mult=(1, 2, 3, 4), channel_mult_emb=4, num_blocks=3,
                 attn_resolutions=(32, 16, 8), dropout=0.10, label_dropout=0):
        super().__init__()
        emb = model_channels * channel_mult_emb
        kw = dict(emb_channels=emb, channels_per_head=64)
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb)
        self.map_layer1 = Linear(emb, emb)
        self.map_label = Linear(label_dim, emb, bias=False) if label_dim else None
        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **kw)
            for i in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **kw)
        skips = [b.out_channels for b in self.enc.values()]
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **kw)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **kw)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **kw)
            for i in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **kw)
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, 3)

    def forward(self, x, noise_labels, class_labels=None):
        emb = self.map_layer1(F.silu(self.map_layer0(self.map_noise(noise_labels))))
        if self.map_label is not None and class_labels is not None:
            emb = emb + self.map_label(class_labels.to(emb.dtype))
        emb = F.silu(emb)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))


class EDMPrecond(nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0,
                 sigma_max=float("inf"), sigma_data=0.5, model_type="DhariwalUNet", **model_kwargs):
        super().__init__()
        if model_type != "DhariwalUNet":
            raise ValueError(f"edm_pickle: model_type {model_type!r} is not implemented here "
                             f"(only DhariwalUNet, the ImageNet-64 release)")
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.sigma_data = sigma_data
        self.model = DhariwalUNet(img_resolution, img_channels, img_channels, label_dim=label_dim,
                                  **model_kwargs)

    def forward(self, x, sigma, class_labels=None):
        s = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        sd = self.sigma_data
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + s ** 2).sqrt()
        f = self.model(c_in * x, s.log().flatten() / 4, class_labels)
        return c_skip * x + c_out * f.to(x.dtype)


# --------------------------------------------------------------------------------------------
# restricted unpickling of torch_utils.persistence records
# --------------------------------------------------------------------------------------------
# The format, as written by NVlabs/edm@008a4e5 torch_utils/persistence.py:
#   * a persistent object pickles as the call ``_reconstruct_persistent_obj(meta)`` (lines 123-131)
#     with ``meta = dict(type='class', version=6, module_src=<source of the defining module>,
#     class_name=<class name>, state=<the object's __dict__>)`` (line 127; _version = 6, line 26;
#     the reader asserts the version and type, lines 195 and 198);
#   * the constructor arguments are recorded in the state as ``_init_args`` (a tuple) and
#     ``_init_kwargs`` (a dict) by the decorator's __init__ (lines 105-109; None when the instance
#     set ``_record_init_args = False``);
#   * the rest of the state is torch.nn.Module's __dict__: ``_parameters``, ``_buffers``,
#     ``_non_persistent_buffers_set``, ``_modules`` (+ hooks, ``training``, plain attributes).
# A release file is ``pickle.dump(dict(ema=..., loss_fn=..., augment_pipe=..., dataset_kwargs=...))``
# (training/training_loop.py lines 179-188).
PERSISTENCE_VERSION = 6
META_FIELDS = frozenset({"type", "version", "module_src", "class_name", "state"})
NETWORK_CLASSES = {"EDMPrecond": EDMPrecond}
# classes whose objects may appear in a release pickle; anything else is refused
KNOWN_CLASSES = frozenset({
    "EDMPrecond", "VPPrecond", "VEPrecond", "iDDPMPrecond", "DhariwalUNet", "SongUNet", "UNetBlock",
    "Conv2d", "Linear", "GroupNorm", "PositionalEmbedding", "FourierEmbedding", "AttentionOp",
    "EDMLoss", "VPLoss", "VELoss", "AugmentPipe",
})
MODULE_STATE_FIELDS = ("_parameters", "_buffers", "_modules")


class _Record:
    """A pickled object kept as data: its class name and its state; never instantiated as code."""

    def __init__(self, class_name: str, state):
        self.class_name = class_name
        self.state = state

    @staticmethod
    def from_meta(meta):
        if not isinstance(meta, dict):
            raise CheckpointFormatError(f"EDM pickle: a persistent-object record must be a dict "
                                        f"(torch_utils/persistence.py meta); got {type(meta).__name__}")
        unknown = set(meta) - META_FIELDS
        missing = META_FIELDS - set(meta)
        if unknown or missing:
            raise CheckpointFormatError(
                f"EDM pickle: a persistent-object record has fields {sorted(meta)}; expected exactly "
                f"{sorted(META_FIELDS)} (torch_utils/persistence.py version {PERSISTENCE_VERSION})"
                + (f"; not understood: {sorted(unknown)}" if unknown else "")
                + (f"; missing: {sorted(missing)}" if missing else ""))
        if meta["version"] != PERSISTENCE_VERSION:
            raise CheckpointFormatError(
                f"EDM pickle: persistent-object record version {meta['version']!r}; this loader reads "
                f"version {PERSISTENCE_VERSION} (the NVlabs/edm release format)")
        if meta["type"] != "class":
            raise CheckpointFormatError(f"EDM pickle: persistent-object record of type {meta['type']!r}; "
                                        f"only 'class' records exist in the release format")
        name = meta["class_name"]
        if name not in KNOWN_CLASSES:
            raise RefusedGlobal(f"EDM pickle: refusing class {name!r} "
                                f"(allowed: {', '.join(sorted(KNOWN_CLASSES))})")
        return _Record(name, meta["state"])          # meta['module_src'] is never used


class _ModuleRecord(_Record):
    """torch container modules (ModuleDict, ModuleList, Sequential) built by NEWOBJ + BUILD."""
    container = "Module"

    def __init__(self, *args, **kwargs):
        super().__init__(type(self).container, None)

    def __setstate__(self, state):
        self.state = state


@functools.lru_cache(maxsize=None)
def _container(name):
    # unpickling makes these with NEWOBJ (cls.__new__, no __init__): the name is a class attribute
    return type(f"_{name}Record", (_ModuleRecord,), {"container": name, "class_name": name, "state": None})


class _EasyDict(dict):
    def __setstate__(self, state):
        self.update(state or {})


def _load_storage_from_bytes(b: bytes):
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return torch.nn.Parameter(data, requires_grad=False)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _SAFE_FUNCS:
        raise RefusedGlobal("EDM pickle: unexpected tensor rebuild function")
    return func(*args)


def _safe_globals() -> dict:
    import torch._utils as tu

    g = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _Record.from_meta,
        ("torch._utils", "_rebuild_tensor_v2"): tu._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): tu._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("torch", "device"): torch.device,
        ("torch", "float32"): torch.float32,
        ("torch", "float16"): torch.float16,
    }
    for name in ("ModuleDict", "ModuleList", "Sequential"):
        g[("torch.nn.modules.container", name)] = _container(name)
    for st in ("FloatStorage", "HalfStorage", "DoubleStorage", "LongStorage", "IntStorage",
               "BoolStorage", "ByteStorage", "BFloat16Storage"):
        g[("torch", st)] = getattr(torch, st)
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        g[(mod, "scalar")] = scalar
        g[(mod, "_reconstruct")] = _reconstruct
    g[("numpy", "dtype")] = np.dtype
    g[("numpy", "ndarray")] = np.ndarray
    return g


_SAFE_FUNCS = set()


class ReleaseUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (see the module docstring); refuses everything else."""

    def __init__(self, file):
        super().__init__(file)
        self._globals = _safe_globals()
        _SAFE_FUNCS.update(v for (m, n), v in self._globals.items() if m == "torch._utils")

    def find_class(self, module, name):
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"EDM pickle: refusing global {module}.{name} (not an EDM release network component)"
            ) from None

    def persistent_load(self, pid):
        raise CheckpointFormatError("EDM pickle: persistent ids are not expected in an EDM release "
                                    "pickle (is this a torch.save zip file rather than a release .pkl?)")


def load_release(path) -> dict:
    """Unpickle a release file into plain data (records, dicts, tensors) without running code."""
    with open(path, "rb") as f:
        return read_checkpoint(lambda fh: ReleaseUnpickler(fh).load(), f)


def _state_of(rec, where: str) -> dict:
    st = rec.state if isinstance(rec, _Record) else None
    if not isinstance(st, dict):
        raise CheckpointFormatError(f"EDM pickle: {where} ({getattr(rec, 'class_name', type(rec).__name__)}) "
                                    f"has no module state dict")
    missing = [k for k in MODULE_STATE_FIELDS if k not in st]
    if missing:
        raise CheckpointFormatError(
            f"EDM pickle: expected fields {list(MODULE_STATE_FIELDS)} in the state of {where} "
            f"({rec.class_name}); missing {missing}; got keys {describe_keys(st)}")
    return st


def flatten_state_dict(rec, prefix: str = "") -> dict:
    """The state dict (parameters + persistent buffers) of a module record tree."""
    st = _state_of(rec, prefix.rstrip(".") or "the top-level network")
    out = {}
    for k, v in (st.get("_parameters") or {}).items():
        if v is not None:
            out[prefix + k] = v.detach() if isinstance(v, torch.Tensor) else v
    skip = set(st.get("_non_persistent_buffers_set") or ())
    for k, v in (st.get("_buffers") or {}).items():
        if v is not None and k not in skip:
            out[prefix + k] = v
    for k, v in (st.get("_modules") or {}).items():
        if v is not None:
            out.update(flatten_state_dict(v, f"{prefix}{k}."))
    return out


def _accepted(fn) -> set:
    return {p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}


def constructor_arguments(rec) -> dict:
    """The recorded constructor arguments (``_init_args`` + ``_init_kwargs``) of the top-level
    network as keyword arguments, checked against what this implementation understands."""
    st = _state_of(rec, "the top-level network")
    missing = [k for k in ("_init_args", "_init_kwargs") if k not in st]
    if missing:
        raise CheckpointFormatError(
            f"EDM pickle: expected field{'s' * (len(missing) > 1)} {' and '.join(missing)} in the "
            f"persistent-object state of {rec.class_name} (torch_utils/persistence.py records the "
            f"constructor arguments there); got keys {describe_keys(st, 60)}")
    args, kwargs = st["_init_args"], st["_init_kwargs"]
    if args is None or kwargs is None:
        raise CheckpointFormatError(f"EDM pickle: {rec.class_name} was saved without its constructor "
                                    f"arguments (_init_args/_init_kwargs are None: _record_init_args=False)")
    if not isinstance(kwargs, dict) or not isinstance(args, (tuple, list)):
        raise CheckpointFormatError(f"EDM pickle: _init_args must be a tuple and _init_kwargs a dict; got "
                                    f"{type(args).__name__} and {type(kwargs).__name__}")
    cls = NETWORK_CLASSES[rec.class_name]
    pos = [n for n in inspect.signature(cls).parameters]
    if len(args) > len(pos):
        raise CheckpointFormatError(f"EDM pickle: {len(args)} positional constructor arguments for "
                                    f"{rec.class_name}, which takes at most {len(pos)}")
    out = dict(zip(pos, args))
    clash = set(out) & set(kwargs)
    if clash:
        raise CheckpointFormatError(f"EDM pickle: constructor arguments {sorted(clash)} given both "
                                    f"positionally and by keyword")
    out.update(kwargs)
    model_type = out.get("model_type", "DhariwalUNet")
    if model_type not in MODEL_TYPES:
        raise CheckpointFormatError(f"EDM pickle: model_type {model_type!r} is not implemented here "
                                    f"(implemented: {', '.join(MODEL_TYPES)}; the ImageNet-64 release "
                                    f"uses DhariwalUNet)")
    understood = (_accepted(cls) | _accepted(MODEL_TYPES[model_type])) - {
        "in_channels", "out_channels", "model_kwargs"}
    unknown = sorted(set(out) - understood)
    if unknown:
        raise CheckpointFormatError(
            f"EDM pickle: constructor argument(s) {unknown} of {rec.class_name} are not understood by "
            f"this loader (understood: {', '.join(sorted(understood))})")
    return out


MODEL_TYPES = {"DhariwalUNet": DhariwalUNet}


def network_from_record(rec) -> nn.Module:
    if not isinstance(rec, _Record) or rec.class_name not in NETWORK_CLASSES:
        raise CheckpointFormatError(
            f"EDM pickle: top-level network {getattr(rec, 'class_name', type(rec).__name__)!r} not "
            f"supported (supported: {', '.join(NETWORK_CLASSES)})")
    net = NETWORK_CLASSES[rec.class_name](**constructor_arguments(rec))
    load_state_dict_checked(net, flatten_state_dict(rec), f"EDM pickle ({rec.class_name})")
    return net.eval().requires_grad_(False)


def load_network(path, key: str = "ema") -> nn.Module:
    data = load_release(path)
    if not isinstance(data, dict) or key not in data:
        raise CheckpointFormatError(f"EDM pickle: {path} should hold a dict with an {key!r} entry (the "
                                    f"EMA network of a release file); got keys {describe_keys(data)}")
    return network_from_record(data[key])


# --------------------------------------------------------------------------------------------
# the denoiser and its class label
# --------------------------------------------------------------------------------------------
def parse_class_label(value):
    """``true`` (the image's label, handed over per batch with set_labels), an int (that class for
    every image), or ``none`` / None (EDMPrecond's own default: an all-zero label vector)."""
    if value is True or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    if isinstance(value, str) and value.strip().lower() == "true":
        return True
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"class_label must be true (the dataset's label of each image), an int class "
                         f"index, or none (all-zero label vector); got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"class_label must be true, an int or none; got {value!r}") from None


class LabelledPrior:
    """Mixin: per-batch class labels handed over by the pipeline (``set_labels``) when
    ``class_label`` is true.  The pipeline calls set_labels(labels) before each batch."""
    class_label = None
    num_classes = 0
    _labels = None

    def set_labels(self, labels) -> None:
        self._labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long).reshape(-1)

    def class_indices(self, x: torch.Tensor):
        """(B,) long class indices for this batch, or None for the all-zero label vector."""
        if self.class_label is None:
            return None
        if self.class_label is True:
            if self._labels is None:
                raise ValueError(
                    f"{type(self).__name__}: class_label is true (each image's own class) but no labels "
                    f"were handed over: the dataset must provide labels (ImageNet needs its labels "
                    f"file or synset folders, see data/imagenet.py), or set the prior param "
                    f"class_label to an int or none")
            lab = self._labels
            if lab.numel() != x.shape[0]:
                raise ValueError(f"{type(self).__name__}: {lab.numel()} labels handed over for a batch of "
                                 f"{x.shape[0]} images")
            lab = lab.to(x.device)
        else:
            lab = torch.full((x.shape[0],), int(self.class_label), dtype=torch.long, device=x.device)
        if self.num_classes and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
            raise ValueError(f"{type(self).__name__}: class label out of range 0..{self.num_classes - 1}: "
                             f"{lab.tolist()}")
        return lab


class EDMReleaseDenoiser(LabelledPrior, Denoiser):
    """An EDM release network as D(x, sigma).  Class-conditional nets take ``class_label``:
    true (the image's own label, see LabelledPrior), an int, or None (all-zero label vector,
    what the official EDMPrecond.forward feeds when it is given no label)."""
    sigma_min = 0.002
    sigma_max = 80.0

    def __init__(self, net: EDMPrecond, class_label=True):
        self.net = net
        self.shape = (net.img_channels, net.img_resolution, net.img_resolution)
        self.class_label = parse_class_label(class_label)
        self.num_classes = int(net.label_dim)

    def denoise(self, x, sigma):
        s = sigma_column(sigma, x).reshape(-1)
        labels = None
        if self.net.label_dim:
            idx = self.class_indices(x)
            labels = torch.zeros((x.shape[0], self.net.label_dim), dtype=x.dtype, device=x.device)
            if idx is not None:
                labels[torch.arange(x.shape[0], device=x.device), idx] = 1.0
        return self.net(x, s, labels)


@register("edm_imagenet64")
def edm_imagenet64(path: str | None = None, class_label=True):
    """EDM's class-conditional ImageNet-64 network (edm-imagenet-64x64-cond-adm.pkl).

    ``class_label`` (default true): each image's own ImageNet class, handed over per batch by the
    pipeline from the dataset's labels.  Why the default: MAP-GA ("the pre-trained
    class-conditional denoiser from [10] ... with their default settings") runs this
    class-conditional model on ImageNet validation images, and the network was only ever trained
    with a real one-hot label (EDM's ImageNet config has no label dropout), so the all-zero vector
    (``none``, what EDMPrecond feeds when called without a label) is outside its training
    distribution; the companion consistency model cannot run without a label at all.  The paper
    does not say which label it fed; the image's true class is the reading under which "default
    settings" of a class-conditional model make sense for restoring a labelled validation image.
    ``none`` reproduces the official label-free call; an int fixes one class for every image."""
    if path is None:
        from dipbench.prefetch import require_checkpoint

        path = require_checkpoint("edm_imagenet64")
    return EDMReleaseDenoiser(load_network(Path(path)), class_label)
