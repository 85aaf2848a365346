"""Train the small EDM U-Net prior (priors/edm_unet.py) on random crops of the skimage32 train split.

    python -m priors.train_edm --config cfg.yaml --out priors/weights/edm_unet_skimage32.pt

Data: a pool of ``pool_size`` random 32x32 crops (data.skimage32.train_crops: random source image,
scale in ``scales``, position, horizontal flip) regenerated every epoch with seed
``seed * 100003 + epoch``, shuffled by a seeded generator: a fresh, deterministic stream.
Loss: EDM (Karras et al. 2022) with log-normal sigma (P_mean, P_std) and lambda(sigma) weighting.
Optimiser: Adam, linear warm-up then cosine decay over the run's progress
``max(step / max_steps, elapsed / max_minutes)``; an EMA of the weights is what is saved.

Outputs (``out`` = ``<dir>/<stem>.pt``): ``<stem>.pt`` (EMA state dict, float32),
``<stem>.sha256``, ``<stem>.train.yaml`` (config + result: steps, time, stop reason),
``<stem>.log.csv`` (step, elapsed_s, epoch, lr, loss), ``<stem>.loss.png``.  Every
``checkpoint_minutes`` all of them are rewritten atomically (temp file + os.replace), and the full
training state (model, EMA, optimiser, step) goes to ``<cache_dir>/train_edm/<stem>.state.pt`` so
``--resume`` continues an interrupted run.
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

DEFAULTS = dict(
    seed=0,
    batch_size=32,
    lr=6e-4,
    warmup_steps=200,
    final_lr_frac=0.05,
    max_steps=100000,
    max_minutes=38.0,
    pool_size=16384,
    scales=[1, 2, 4, 8],
    ema_halflife_steps=200,
    p_mean=-1.2,
    p_std=1.2,
    sigma_data=0.5,
    threads=2,
    device="auto",            # auto: cuda when available, else cpu
    log_every=25,
    checkpoint_minutes=3.0,
    grad_clip=1.0,
    model=dict(in_channels=3, channels=32, channel_mult=[1, 2, 2], num_blocks=2,
               attn_resolutions=[8], resolution=32, num_heads=4, emb_freqs=32, groups=8),
)


def _stem(out: Path) -> str:
    return out.name[: -len(out.suffix)] if out.suffix else out.name


def sidecars(out) -> dict:
    out = Path(out)
    s = _stem(out)
    return dict(weights=out, sha256=out.with_name(s + ".sha256"),
                config=out.with_name(s + ".train.yaml"), log=out.with_name(s + ".log.csv"),
                curve=out.with_name(s + ".loss.png"))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_config(path=None, overrides=None) -> dict:
    import yaml

    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        doc.pop("result", None)
        model = doc.pop("model", None) or {}
        cfg.update(doc)
        cfg["model"].update(model)
    for k, v in (overrides or {}).items():
        if k == "model":
            cfg["model"].update(v)
        else:
            cfg[k] = v
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"train_edm: unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return cfg


def crop_pool(epoch: int, cfg: dict):
    """The epoch's pool of crops as (N, 3, 32, 32) float32 in [-1, 1] (deterministic)."""
    import numpy as np
    import torch

    from data.skimage32 import train_crops

    crops = train_crops(int(cfg["pool_size"]), seed=int(cfg["seed"]) * 100003 + epoch,
                        scales=tuple(cfg["scales"]))
    x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float() / 127.5 - 1.0
    return x


def lr_at(step: int, progress: float, cfg: dict) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg["warmup_steps"]))
    f = cfg["final_lr_frac"]
    cos = f + (1 - f) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg["lr"] * warm * cos


def _plot_curve(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        steps = [r["step"] for r in rows]
        loss = [r["loss"] for r in rows]
        ax.plot(steps, loss, lw=0.8, label="EDM loss (mean over log interval)")
        k = max(1, len(loss) // 20)
        if len(loss) > k:
            smooth = [sum(loss[max(0, i - k + 1): i + 1]) / len(loss[max(0, i - k + 1): i + 1])
                      for i in range(len(loss))]
            ax.plot(steps, smooth, lw=1.5, label=f"running mean ({k})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("edm_unet training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    _atomic_write_bytes(path, buf.getvalue())


def _write_outputs(out: Path, ema, cfg: dict, rows, result: dict) -> None:
    import torch
    import yaml

    from .edm_unet import sha256_file

    paths = sidecars(out)
    buf = io.BytesIO()
    torch.save({k: v.detach().float().cpu().clone() for k, v in ema.state_dict().items()}, buf)
    _atomic_write_bytes(paths["weights"], buf.getvalue())
    _atomic_write_bytes(paths["sha256"],
                        f"{sha256_file(paths['weights'])}  {paths['weights'].name}\n".encode())
    doc = copy.deepcopy(cfg)
    doc["result"] = result
    _atomic_write_bytes(paths["config"], yaml.safe_dump(doc, sort_keys=False).encode())
    s = io.StringIO()
    w = csv.DictWriter(s, fieldnames=["step", "elapsed_s", "epoch", "lr", "loss"])
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    _atomic_write_bytes(paths["log"], s.getvalue().encode())
    _plot_curve(rows, paths["curve"])


def train(cfg: dict, out, resume: bool = False, log=print) -> dict:
    """Train with ``cfg`` (see DEFAULTS); write the outputs next to ``out``; return the result dict."""
    import torch

    from dipbench.paths import cache_dir
    from .edm_unet import EDMPrecond, edm_loss, n_params

    out = Path(out)
    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(int(cfg["seed"]))               # parameter initialisation
    dev = cfg.get("device", "auto")
    dev = torch.device("cuda" if dev == "auto" and torch.cuda.is_available() else
                       "cpu" if dev == "auto" else dev)
    net = EDMPrecond(sigma_data=cfg["sigma_data"], **cfg["model"]).to(dev)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(int(cfg["seed"]) + 1)   # noise levels and noise
    state_path = cache_dir() / "train_edm" / f"{_stem(out)}.state.pt"
    step, epoch, elapsed0, rows = 0, 0, 0.0, []
    if resume and state_path.exists():
        st = torch.load(state_path, map_location=dev, weights_only=True)
        net.load_state_dict(st["net"])
        net.to(dev)
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"].cpu())
        step, epoch, elapsed0, rows = st["step"], st["epoch"], st["elapsed"], st["rows"]
        log(f"resumed from {state_path} at step {step} ({elapsed0:.0f} s)")
    nparam = n_params(net)
    log(f"edm_unet: {nparam} parameters; batch {cfg['batch_size']}; budget {cfg['max_minutes']} min "
        f"or {cfg['max_steps']} steps; device {dev}; threads {torch.get_num_threads()}")
    budget = 60.0 * float(cfg["max_minutes"])
    t0 = time.time() - elapsed0
    last_ckpt = time.time()
    acc, nacc = 0.0, 0
    stop = None

    def result(reason):
        return dict(steps=step, elapsed_s=round(time.time() - t0, 1), epochs_started=epoch,
                    images_seen=step * int(cfg["batch_size"]), parameters=nparam,
                    stop_reason=reason, final_loss=rows[-1]["loss"] if rows else None,
                    torch=str(torch.__version__))

    def checkpoint(reason):
        _write_outputs(out, ema, cfg, rows, result(reason))
        state_path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(dict(net=net.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                        gen=gen.get_state(), step=step, epoch=epoch, elapsed=time.time() - t0,
                        rows=rows), buf)
        _atomic_write_bytes(state_path, buf.getvalue())

    bs = int(cfg["batch_size"])
    while stop is None:
        tp = time.time()
        pool = crop_pool(epoch, cfg)
        order = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(
            int(cfg["seed"]) * 7919 + epoch))
        log(f"epoch {epoch}: pool of {pool.shape[0]} crops in {time.time() - tp:.1f} s")
        spe = pool.shape[0] // bs                      # steps per epoch
        start = max(0, step - epoch * spe) * bs         # > 0 only when resuming mid-epoch
        for i in range(start, pool.shape[0] - bs + 1, bs):
            elapsed = time.time() - t0
            progress = max(step / cfg["max_steps"], elapsed / budget)
            if progress >= 1.0:
                stop = (f"time budget {cfg['max_minutes']} min reached" if elapsed >= budget
                        else f"max_steps {cfg['max_steps']} reached")
                break
            lr = lr_at(step, progress, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            y = pool[order[i: i + bs]].to(dev)
            loss = edm_loss(net, y, gen, cfg["p_mean"], cfg["p_std"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(cfg["grad_clip"]))
            opt.step()
            decay = min(0.5 ** (1.0 / cfg["ema_halflife_steps"]), (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(pn, 1 - decay)
            step += 1
            acc += loss.item()
            nacc += 1
            if step % cfg["log_every"] == 0:
                rows.append(dict(step=step, elapsed_s=round(time.time() - t0, 1), epoch=epoch,
                                 lr=lr, loss=acc / nacc))
                log(f"step {step:6d}  {time.time() - t0:7.0f} s  epoch {epoch}  lr {lr:.2e}  "
                    f"loss {acc / nacc:.4f}")
                acc, nacc = 0.0, 0
            if time.time() - last_ckpt > 60.0 * cfg["checkpoint_minutes"]:
                checkpoint(f"in progress (checkpoint at step {step})")
                last_ckpt = time.time()
                log(f"checkpoint written at step {step}")
        else:
            epoch += 1
    checkpoint(stop)
    res = result(stop)
    log(f"done: {stop}; {step} steps in {res['elapsed_s']} s; weights {out}")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML with keys of train_edm.DEFAULTS (a 'result:' key is ignored)")
    p.add_argument("--out", required=True, help="weights path <dir>/<stem>.pt; sidecars go beside it")
    p.add_argument("--resume", action="store_true", help="continue from the cached training state")
    p.add_argument("--max-minutes", type=float, help="override the wall-clock budget")
    p.add_argument("--max-steps", type=int, help="override the step budget")
    a = p.parse_args(argv)
    over = {}
    if a.max_minutes is not None:
        over["max_minutes"] = a.max_minutes
    if a.max_steps is not None:
        over["max_steps"] = a.max_steps
    cfg = load_config(a.config, over)
    train(cfg, a.out, resume=a.resume, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
