"""Our side of a parity record: run the solver on the record's problem, R replicates of B."""
from __future__ import annotations

import math
import time

import torch

import solvers
from dipbench.seeding import generator
from . import problems, stats
from .records import zscore


def run_replicates(solver: str, params: dict, problem: str, statistics, batch: int, replicates: int,
                   tag: str) -> dict:
    """{stat: {value, se, values}} over ``replicates`` seeded runs of ``batch`` reconstructions."""
    p = problems.get(problem)
    alg = solvers.build(solver, **params)
    vals = {s: [] for s in statistics}
    for r in range(replicates):
        g = generator("parity", tag, r)
        y = p.y.expand((batch,) + tuple(p.y.shape[1:])).clone()
        x = alg.solve(y, p.op, p.prior, p.sigma_y, g)
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"{solver} on {problem}: non-finite reconstruction (replicate {r})")
        for s in statistics:
            vals[s].append(stats.get(s)(x.detach(), p))
    out = {}
    for s, v in vals.items():
        t = torch.tensor(v, dtype=torch.float64)
        se = float(t.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        out[s] = {"value": float(t.mean()), "se": se, "values": v}
    return out


def evaluate(rec: dict, replicates: int | None = None, reproduce: bool | None = None) -> dict:
    """Run our side of a record.  Returns {'ours': figures, 'z': {stat: z}} and, for DEVIATES records,
    also 'reproduce' / 'z_reproduce' (our solver with the reference-reproducing flags)."""
    o = rec["ours"]
    R = int(replicates or o["replicates"])
    ref = rec["reference"]["figures"]
    t0 = time.perf_counter()
    res = {}
    runs = [("ours", dict(o["params"]))]
    if rec["verdict"] == "DEVIATES" and reproduce is not False:
        runs.append(("reproduce", {**o["params"], **rec["reproduce"]["params"]}))
    for key, params in runs:
        figs = run_replicates(rec["solver"], params, rec["problem"], rec["statistics"], int(o["batch"]), R,
                              tag=f"{rec['id']}:{key}")
        res[key] = {s: {"value": round(f["value"], 6), "se": round(f["se"], 6)} for s, f in figs.items()}
        zkey = "z" if key == "ours" else "z_" + key
        res[zkey] = {s: round(zscore(figs[s], ref[s]), 2) for s in rec["statistics"]}
        patched = rec["reference"].get("patched")
        if key == "ours" and patched:
            res["z_patched"] = {s: round(zscore(figs[s], patched["figures"][s]), 2) for s in rec["statistics"]}
    res["replicates"] = R
    res["batch"] = int(o["batch"])
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def rescore(rec: dict, res: dict) -> dict:
    """The z-scores of stored figures (a ``measured`` block) recomputed against the record's current
    reference figures (after a reference figure was measured again); the figures are unchanged."""
    res = dict(res)
    ref = rec["reference"]["figures"]
    for key, zkey in (("ours", "z"), ("reproduce", "z_reproduce")):
        if key in res:
            res[zkey] = {s: round(zscore(res[key][s], ref[s]), 2) for s in rec["statistics"]}
    patched = rec["reference"].get("patched")
    if patched and "ours" in res:
        res["z_patched"] = {s: round(zscore(res["ours"][s], patched["figures"][s]), 2) for s in rec["statistics"]}
    return res


def agreement(rec: dict, res: dict) -> dict:
    """The z-scores that must be small: ours against the reference for PARITY, the reproducing run
    for DEVIATES, ours against the patched reference for a REFERENCE-BUG record that has one."""
    if rec["verdict"] == "DEVIATES":
        return res["z_reproduce"]
    if rec["verdict"] == "REFERENCE-BUG":
        return res.get("z_patched", {})
    return res["z"]


def bug_shown(rec: dict, res: dict) -> bool:
    """REFERENCE-BUG: the reference is beyond the threshold on the exact-answer statistic, ours not."""
    b = rec["bug"]
    thr = float(b["threshold"])
    ref = float(rec["reference"]["figures"][b["statistic"]]["value"])
    ours = float(res["ours"][b["statistic"]]["value"])
    return ref > thr > ours if b.get("direction", "above") == "above" else ref < thr < ours
