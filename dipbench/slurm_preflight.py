"""Before the first SLURM submission: does every job this run will submit fit a node of the cluster?

SLURM itself does not say: a job asking more CPUs or memory than any node has pends forever
(`Reason=PartitionConfig` or `Resources`), and a GPU request on a cluster without GPUs is rejected
per submission ("Invalid generic resource (gres) specification") until the retries run out.  The
Snakefile's onstart hook (workflow/rules/run_control.smk) calls `check_workflow` when the executor
is `slurm`: it reads the partitions with `sinfo` and every submission's request (a group bundle's
request is what Snakemake computed for the whole bundle) and stops with one message naming what
does not fit and the setting that fixes it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

SINFO = ["sinfo", "-h", "-e", "-o", "%R|%c|%m|%G|%l"]


@dataclass
class NodeClass:
    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    timelimit: str


@dataclass
class Request:
    name: str          # rule name or group id
    n: int             # submissions like it
    cpus: int
    mem_mb: int
    gpus: int
    partition: str | None = None
    group: bool = False  # a bundle: its width follows --cores, not one rule's threads


def _gpus(gres: str) -> int:
    n = 0
    for part in (gres or "").split(","):
        part = re.sub(r"\(.*?\)", "", part.strip())  # gpu:a100:4(S:0-1)
        if part.startswith("gpu"):
            fields = part.split(":")
            n += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return n


def parse_sinfo(text: str) -> list[NodeClass]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        part, cpus, mem, gres, limit = (line.split("|") + [""] * 5)[:5]
        out.append(NodeClass(part.strip(), int(re.sub(r"\D", "", cpus) or 0),
                             int(re.sub(r"\D", "", mem) or 0), _gpus(gres), limit.strip()))
    return out


def query_partitions() -> list[NodeClass] | None:
    """None when sinfo is not there or fails (then nothing is checked)."""
    if not shutil.which("sinfo"):
        return None
    try:
        res = subprocess.run(SINFO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_sinfo(res.stdout) if res.returncode == 0 else None


def _fmt(nodes):
    return ", ".join(f"{n.partition}: {n.cpus} CPUs, {n.mem_mb} MB" + (f", {n.gpus} GPUs" if n.gpus else "")
                     for n in nodes)


def problems(requests: list[Request], nodes: list[NodeClass], device: str) -> list[str]:
    """One message per kind of request that no node can hold (empty: everything fits)."""
    msgs = []
    if not nodes:
        return msgs
    any_gpu = any(n.gpus for n in nodes)
    gpu_reqs = [r for r in requests if r.gpus > 0]
    if gpu_reqs and not any_gpu:
        names = sorted({r.name for r in gpu_reqs})
        msgs.append(
            f"{sum(r.n for r in gpu_reqs)} submission(s) ({', '.join(names)}) ask for a GPU "
            f"(config `device: {device}`), but no partition of this cluster has one ({_fmt(nodes)}). "
            "Run on CPUs with `device: cpu` in the config (or `--config device=cpu`), or submit to a "
            "GPU partition (`--set-resources solve:slurm_partition=<gpu partition>` or "
            "`slurm-partition-config` in the profile).")
    for r in requests:
        pool = [n for n in nodes if r.partition in (None, n.partition)]
        if r.partition and not pool:
            msgs.append(f"{r.name}: partition `{r.partition}` does not exist (sinfo: {_fmt(nodes)})")
            continue
        if r.gpus > 0 and any_gpu:
            pool = [n for n in pool if n.gpus >= r.gpus]
            if not pool:
                msgs.append(f"{r.name} asks for {r.gpus} GPU(s) but partition `{r.partition}` has none "
                            f"({_fmt(nodes)}): submit it to a GPU partition or set `device: cpu`")
                continue
        elif r.gpus > 0:
            continue  # reported above
        if not any(n.cpus >= r.cpus and n.mem_mb >= r.mem_mb for n in pool):
            big = max(pool, key=lambda n: (n.cpus, n.mem_mb))
            fix = []
            if r.cpus > big.cpus:
                fix.append(f"--cores {big.cpus} (the profile's `cores:` caps every job's threads and a "
                           f"bundle's width)" + ("" if r.group else f" or --set-threads {r.name}={big.cpus}"))
            if r.mem_mb > max(n.mem_mb for n in pool):
                rule = "<rule>" if r.group else r.name
                fix.append(f"less memory: --set-resources {rule}:mem_mb=<MB> or the config's "
                           f"`resources: {{{rule}: {{mem_mb: ...}}}}`" + (
                               " (a bundle's memory is the sum over the jobs it runs at once: lower "
                               "--cores to run them in series)" if r.group else ""))
            msgs.append(f"{r.n} submission(s) of {r.name} ask for {r.cpus} CPUs and {r.mem_mb} MB, but the "
                        f"largest node{' of ' + r.partition if r.partition else ''} has {big.cpus} CPUs and "
                        f"{max(n.mem_mb for n in pool)} MB: SLURM would leave them pending forever. Fix: "
                        + "; ".join(fix or ["ask for fewer CPUs or less memory"]))
    return msgs


def _int(v, default=0):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def requests_from_dag(workflow) -> list[Request]:
    """What each submission of this run asks for: group bundles as a whole, single jobs alone."""
    dag = workflow.dag
    seen, reqs = set(), {}
    for job in dag.needrun_jobs():
        if job.is_local:
            continue
        group = dag.get_job_group(job)
        unit = group if group is not None else job
        if id(unit) in seen:
            continue
        seen.add(id(unit))
        res = unit.resources
        name = unit.groupid if group is not None else job.rule.name
        if group is not None and "_" in name and name.split("_")[0] in ("cell", "run"):
            name = name.split("_")[0]  # cell_<dataset>_<task>_seed<k>: one line per kind
        cpus = _int(res.get("cpus_per_task"), 0) or _int(res.get("_cores"), 1)
        key = (name, cpus, _int(res.get("mem_mb")), _int(res.get("gpu")), res.get("slurm_partition"))
        if key in reqs:
            reqs[key].n += 1
        else:
            reqs[key] = Request(name, 1, cpus, _int(res.get("mem_mb")), _int(res.get("gpu")),
                                res.get("slurm_partition") or None, group=group is not None)
    return list(reqs.values())


def check_workflow(workflow, config, log=print) -> None:
    nodes = query_partitions()
    if nodes is None:
        log("dipbench: sinfo not available: the jobs' requests are not checked against the cluster")
        return
    reqs = requests_from_dag(workflow)
    msgs = problems(reqs, nodes, str(config.get("device", "auto")))
    for r in sorted(reqs, key=lambda r: r.name):
        log(f"dipbench: {r.n} x {r.name}: {r.cpus} CPUs, {r.mem_mb} MB"
            + (f", {r.gpus} GPU" if r.gpus else "") + (f", partition {r.partition}" if r.partition else ""))
    if msgs:
        from snakemake.exceptions import WorkflowError

        raise WorkflowError("These jobs cannot run on this cluster (sinfo: " + _fmt(nodes) + "):\n  - "
                            + "\n  - ".join(msgs))
