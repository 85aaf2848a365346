"""GPU speed switches for a prior's network, off by default (config key ``speed``):

    speed: {compile: false, channels_last: false, autocast: none}   # autocast: none | bf16 | fp16

* ``channels_last``: the network's weights and its 4-D inputs in NHWC memory layout (same values;
  faster convolutions on tensor-core GPUs).  Works on any device; on a CPU it gives the same
  outputs to float rounding (tests/test_speed_options.py) and is not expected to be faster.
* ``autocast``: the network runs under ``torch.autocast(cuda, bf16|fp16)``, outputs cast back to
  float32.  CUDA only: on another device it is ignored with a message (a config written for a GPU
  still runs on a CPU), because CPU autocast is slower than float32 there and changes results.
* ``compile``: ``torch.compile`` of the network.  CUDA only (ignored elsewhere with a message): on a
  CPU its inductor backend needs a C++ toolchain and minutes of compilation per shape.

The switch acts on the prior's network modules (the attributes ``net`` / ``model`` that hold a
``torch.nn.Module``); a prior without one (the analytic Gaussian, GMM) ignores every switch with a
message.  Every choice is returned as a note for run.json.  None of them is measured here: no GPU
was available (issue 18, item 4: speed-up per prior and batch, and the change in every metric on a
fixed seed, to be measured before any switch is turned on by default; a switch that moves PSNR by
more than 0.1 dB stays off).
"""
from __future__ import annotations

import torch

NETWORK_ATTRS = ("net", "model")
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class _Wrapped(torch.nn.Module):
    """A network with its call changed; attribute lookups fall through to the wrapped network."""

    def __init__(self, inner: torch.nn.Module, channels_last: bool = False, autocast=None):
        super().__init__()
        self.inner = inner
        self._cl = channels_last
        self._ac = autocast

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, *args, **kwargs):
        if self._cl:
            args = tuple(a.contiguous(memory_format=torch.channels_last)
                         if isinstance(a, torch.Tensor) and a.ndim == 4 else a for a in args)
        if self._ac is None:
            out = self.inner(*args, **kwargs)
        else:
            dev = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cuda")
            with torch.autocast(dev, dtype=self._ac):
                out = self.inner(*args, **kwargs)
            out = out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out
        return out.contiguous() if isinstance(out, torch.Tensor) else out


def normalise(opts) -> dict:
    opts = dict(opts or {})
    ac = opts.get("autocast")
    return dict(compile=bool(opts.get("compile", False)), channels_last=bool(opts.get("channels_last", False)),
                autocast=None if ac in (None, "none", False) else str(ac))


def apply(prior, opts, device: str, log=print) -> list[str]:
    """Apply the switches in ``opts`` to ``prior`` in place; returns the notes (what was applied or
    ignored, and why)."""
    o = normalise(opts)
    if not (o["compile"] or o["channels_last"] or o["autocast"]):
        return []
    notes = []
    nets = [a for a in NETWORK_ATTRS if isinstance(getattr(prior, a, None), torch.nn.Module)]
    if not nets:
        notes.append(f"speed options ignored: prior {type(prior).__name__} has no network module "
                     f"(attributes {', '.join(NETWORK_ATTRS)})")
        for n in notes:
            log(n)
        return notes
    cuda = str(device).startswith("cuda")
    ac = o["autocast"]
    if ac and not cuda:
        notes.append(f"speed.autocast={ac} ignored: autocast is used on CUDA devices only (device {device})")
        ac = None
    comp = o["compile"]
    if comp and not cuda:
        notes.append(f"speed.compile ignored: torch.compile is used on CUDA devices only (device {device})")
        comp = False
    for a in nets:
        net = getattr(prior, a)
        if o["channels_last"]:
            net.to(memory_format=torch.channels_last)
        if o["channels_last"] or ac:
            net = _Wrapped(net, channels_last=o["channels_last"], autocast=AUTOCAST[ac] if ac else None)
        if comp:
            net = torch.compile(net)
        setattr(prior, a, net)
    done = [k for k, v in (("channels_last", o["channels_last"]), ("autocast=" + str(ac), ac), ("compile", comp)) if v]
    if done:
        notes.append(f"speed options applied to {type(prior).__name__}.{'/'.join(nets)}: {', '.join(done)}")
    for n in notes:
        log(n)
    return notes
