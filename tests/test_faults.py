"""Running at scale and surviving faults (issue #6).

Snakemake runs here are subprocesses on a reduced ci config (1 task, 1 seed, 2 images, few solver
steps, psnr/ssim) under a tmp results root, so the whole file stays within a few minutes on 2 CPU
cores.  Test-only solvers come from a plugin module written to a tmp folder and named in the
config's `plugins` (the same mechanism a user's own solver module would use).
"""
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dipbench import config as C
from dipbench import pipeline as P
from dipbench.config import ConfigError, validate
from dipbench.integrity import IntegrityError, verify_file, verify_manifest, write_manifest
from dipbench.paths import ROOT

DS, TASK = "skimage32_gauss", "inpaint_half"

PLUGIN = '''
import os
import torch
from solvers.base import Solver
from solvers.registry import register


@register("test_diverge_one")
class DivergeOne(Solver):
    """Returns the denoised zero image, with NaN for the first image of the batch."""
    defaults = dict(scale=1.0)
    needs = frozenset({"forward"})

    def solve(self, y, op, den, sigma_y, generator):
        x = torch.zeros((y.shape[0], *op.x_shape), device=y.device)
        out = den(x, torch.tensor(1.0)) * self.p.scale
        out[0] = float("nan")
        return out


@register("test_raises")
class Raises(Solver):
    """Raises, unless the file named by $DIPBENCH_TEST_HEALED exists (then it behaves)."""
    defaults = dict(scale=1.0)
    needs = frozenset({"forward"})

    def solve(self, y, op, den, sigma_y, generator):
        healed = os.environ.get("DIPBENCH_TEST_HEALED")
        if not (healed and os.path.exists(healed)):
            raise RuntimeError("boom from the test solver")
        return den(torch.zeros((y.shape[0], *op.x_shape), device=y.device), torch.tensor(1.0))
'''


def ci_cfg():
    with open(ROOT / "config" / "ci.yaml") as f:
        return yaml.safe_load(f)


def small_cfg(results, solvers, plugins=(), **over):
    cfg = ci_cfg()
    cfg.update(results=str(results), seeds=[0], batch_size=2, metrics=["psnr", "ssim"],
               tasks={TASK: cfg["tasks"][TASK]}, solvers=solvers)
    cfg["datasets"] = {DS: dict(cfg["datasets"][DS], n_images=2)}
    cfg.pop("gmm_table", None)
    if plugins:
        cfg["plugins"] = list(plugins)
    cfg.update(over)
    return cfg


def write_cfg(path, cfg):
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg))
    return path


def env_with(plugin_dir=None, **extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    if plugin_dir:
        env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def snakemake(cfg_path, *args, env=None, timeout=400, cores="2"):
    # targets first: --configfile takes several values and would swallow a trailing target
    return subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", cores, "--configfile", str(cfg_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env or env_with())


def job_counts(out: str) -> dict:
    """The 'Job stats' table of a (dry) run -> {rule: count}."""
    m = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", out, re.S)
    if not m:
        return {}
    return {a: int(b) for a, b in re.findall(r"^(\w+)\s+(\d+)\s*$", m.group(1), re.M)}


def planned_solvers(out: str) -> set:
    """Solvers of the solve jobs a dry run plans (from their output paths)."""
    return set(re.findall(rf"rule solve:\n(?:\s+\w+:.*\n)*?\s+output: \S*/runs/{DS}/{TASK}/([^/]+)/seed0/",
                          out))


# ---------------------------------------------------------------------------------- a faulty grid
@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """One ok solver, one diverging on one image, one raising; run with --keep-going."""
    tmp = tmp_path_factory.mktemp("faulty")
    (tmp / "plug").mkdir()
    (tmp / "plug" / "dipbench_test_faulty.py").write_text(PLUGIN)
    res = tmp / "results"
    solvers = {"vml_map": {"params": {"steps": 2, "iters": 3}},
               "diverge": {"solver": "test_diverge_one"},
               "raises": {"solver": "test_raises"}}
    cfg = small_cfg(res, solvers, plugins=["dipbench_test_faulty"])
    path = write_cfg(tmp / "cfg.yaml", cfg)
    env = env_with(tmp / "plug", DIPBENCH_TEST_HEALED=str(tmp / "healed"))
    r = snakemake(path, "--keep-going", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-4000:]
    return dict(tmp=tmp, res=res, cfg=cfg, path=path, env=env, out=r.stdout + r.stderr)


def run_dir(res, solver, task=TASK, seed=0):
    return Path(res) / "runs" / DS / task / solver / f"seed{seed}"


def test_diverged_image_recorded_and_job_succeeds(faulty):
    """NaN on one image: that image is `diverged`, the others ok, the run and the grid complete."""
    run = json.loads((run_dir(faulty["res"], "diverge") / "run.json").read_text())
    assert run["status"] == "diverged"
    assert sorted(run["images"].values()) == ["diverged", "ok"]
    lb = pd.read_csv(faulty["res"] / "leaderboard.csv").set_index("solver")
    assert lb.loc["diverge", "n_diverged"] == 1 and lb.loc["diverge", "n_failed"] == 0
    assert lb.loc["vml_map", "status"] == "ok" and lb.loc["vml_map", "n_diverged"] == 0
    sc = pd.read_csv(run_dir(faulty["res"], "diverge") / "scores.csv")
    assert sc["psnr"].isna().sum() == 1           # no number for the diverged image


def test_raising_solver_recorded_failed_and_grid_completes(faulty):
    """An exception in a solver: status failed with the traceback in run.json and the job log,
    the job succeeds, and the leaderboard and the tables are still built, marking the cell."""
    rd = run_dir(faulty["res"], "raises")
    run = json.loads((rd / "run.json").read_text())
    assert run["status"] == "failed" and "boom from the test solver" in run["reason"]
    assert "Traceback" in run["traceback"] and set(run["images"].values()) == {"failed"}
    log = (faulty["res"] / "logs" / "solve" / DS / TASK / "raises" / "seed0.log").read_text()
    assert "Traceback" in log and "boom from the test solver" in log
    marker = json.loads(P.failure_marker(rd).read_text())
    assert marker["failures"] == 1 and marker["resolved"] is False
    lb = pd.read_csv(faulty["res"] / "leaderboard.csv").set_index("solver")
    assert lb.loc["raises", "status"] == "failed" and lb.loc["raises", "n_failed"] == 2
    assert np.isnan(lb.loc["raises", "psnr"]) and "boom" in lb.loc["raises", "reason"]
    table = (faulty["res"] / "report" / "tables" / f"{DS}.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| raises"))
    assert "–" in row and "†" in row               # a dash with the footnote mark, not a number


def test_failed_run_is_retried_then_stays_done(faulty):
    """The failed run (only it, and what depends on it) is planned again on the next invocation;
    once it succeeds the grid is up to date."""
    dry = snakemake(faulty["path"], "-n", env=faulty["env"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    out = dry.stdout + dry.stderr
    assert planned_solvers(out) == {"raises"}, out[-3000:]
    counts = job_counts(out)
    assert counts.get("solve") == 1 and counts.get("score") == 1 and "measure" not in counts
    (faulty["tmp"] / "healed").write_text("")      # the solver's bug is fixed
    try:
        r = snakemake(faulty["path"], f"{faulty['res']}/leaderboard.csv", env=faulty["env"])
        assert r.returncode == 0, r.stderr[-3000:]
        run = json.loads((run_dir(faulty["res"], "raises") / "run.json").read_text())
        assert run["status"] == "ok" and run["previous_failures"] == 1
        assert json.loads(P.failure_marker(run_dir(faulty["res"], "raises")).read_text())["resolved"]
        again = snakemake(faulty["path"], "-n", f"{faulty['res']}/leaderboard.csv", env=faulty["env"])
        assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-2000:]
    finally:
        (faulty["tmp"] / "healed").unlink()


def test_changing_one_solver_hyperparameter_reruns_only_that_solver(faulty):
    """Content addressing: the solve rule's params carry the solver's entry; editing vml_map's
    `iters` plans vml_map's solve (and its score) only, for the reason 'Params have changed'."""
    cfg = copy.deepcopy(faulty["cfg"])
    cfg["solvers"]["vml_map"]["params"]["iters"] = 4
    path = write_cfg(faulty["tmp"] / "cfg_changed.yaml", cfg)
    target = f"{faulty['res']}/leaderboard.csv"
    dry = snakemake(path, "-n", target, env=faulty["env"])
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-2000:]
    assert planned_solvers(out) == {"vml_map"}, out[-3000:]
    assert job_counts(out).get("solve") == 1 and "measure" not in job_counts(out)
    reason = re.search(r"rule solve:\n(?:.*\n)*?\s+reason: (.*)", out).group(1)
    assert reason.startswith("Params have changed") and "'iters': 4" in reason, reason
    # (`--list-changes params` is no help here: snakemake 9.27 lists every output with recorded
    # params, changed or not -- its ParamsChange iterates its files even when empty.)


def test_provenance_in_run_json(faulty):
    """git commit + dirty flag, config hash, package versions, hostname, device, start/end time."""
    run = json.loads((run_dir(faulty["res"], "vml_map") / "run.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", run["git"]["commit"]) and isinstance(run["git"]["dirty"], bool)
    assert re.fullmatch(r"[0-9a-f]{16}", run["config_hash"])
    assert run["packages"]["torch"] == torch.__version__.split("+")[0] or run["packages"]["torch"]
    assert run["packages"]["snakemake"] and run["python"]
    assert run["hostname"] == socket.gethostname() and run["device"].startswith("cpu")
    assert run["start"] <= run["end"] and "T" in run["start"]
    assert run["params"]["iters"] == 3 and run["seed"] == 0 and "scheduler" in run
    for key in ("nfe_per_image", "vjp_per_image", "peak_memory_mb", "wall_per_image_s", "batch_size"):
        assert run[key] is not None, key
    other = json.loads((run_dir(faulty["res"], "diverge") / "run.json").read_text())
    assert other["config_hash"] != run["config_hash"]


# ---------------------------------------------------------------------------------- kill + restart
def test_killed_run_restarts_and_completes(tmp_path):
    """SIGKILL the whole snakemake process group while a solve job runs; nothing half-made is
    accepted: the dry run plans the killed job again, and the restart completes it."""
    res = tmp_path / "results"
    cfg = small_cfg(res, {"vml_map": {"params": {"steps": 10, "iters": 30}}})
    path = write_cfg(tmp_path / "cfg.yaml", cfg)
    rd = run_dir(res, "vml_map")
    target = str(rd / "run.json")
    log = res / "logs" / "solve" / DS / TASK / "vml_map" / "seed0.log"
    p = subprocess.Popen([sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile", str(path)],
                         cwd=ROOT, env=env_with(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        t0 = time.time()
        while not log.exists() and p.poll() is None and time.time() - t0 < 180:
            time.sleep(0.05)
        assert log.exists() and p.poll() is None, "the solve job never started"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert not (rd / "run.json").exists()            # killed mid-solve: no completion record
    dry = snakemake(path, "-n", target)
    assert dry.returncode == 0 and job_counts(dry.stdout + dry.stderr).get("solve") == 1, dry.stderr[-2000:]
    assert job_counts(dry.stdout + dry.stderr).get("measure") is None   # measurement was complete
    unlock = snakemake(path, "--unlock", target)      # the killed process left its lock behind
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    r = snakemake(path, target)
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((rd / "run.json").read_text())
    assert run["status"] == "ok"
    z = np.load(rd / "recon.npz")
    assert z["recon"].shape == (2, 3, 32, 32) and np.isfinite(z["recon"]).all()
    assert not list(rd.parent.glob(".*.tmp*")) and not list(rd.glob(".recon.npz.*"))


# ---------------------------------------------------------------------------------- bad config
@pytest.fixture
def cfg():
    return ci_cfg()


@pytest.mark.parametrize("mutate,needles", [
    (lambda c: c.update(seeds=[0, 1.5]), ["seeds", "1.5"]),
    (lambda c: c.update(seeds=[0, True]), ["seeds", "True"]),
    (lambda c: c.update(seeds=[0, 0]), ["seeds", "non-unique"]),
    (lambda c: c.update(seeds=[-1]), ["seeds", "-1"]),
    (lambda c: c.update(seeds=[]), ["seeds"]),
    (lambda c: c["tasks"]["sr_x2"].update(sigma_y="0.05"), ["sigma_y", "'0.05'"]),
    (lambda c: c["tasks"]["sr_x2"].update(sigma_y=-0.01), ["sigma_y", "-0.01"]),
    (lambda c: c["solvers"]["vml_map"]["params"].update(steps="20"),
     ["solvers.vml_map.params.steps", "int", "'20'"]),
    (lambda c: c["solvers"]["vml_map"]["params"].update(lr_scale=float("nan")),
     ["solvers.vml_map.params.lr_scale", "finite"]),
    (lambda c: c["tasks"].update(pr={"operator": "phase_retrieval", "sigma_y": 0.05}),
     ["solvers.ddrm x tasks.pr", "svd", "phase_retrieval"]),
    (lambda c: c["tasks"]["sr_x2"]["params"].update(factor=3),
     ["tasks.sr_x2", "cannot build operator 'sr_block'", "skimage32_gauss"]),
    (lambda c: c["solvers"].update({"my/solver": {"solver": "vml_map"}}), ["solvers.my/solver", "name must match"]),
    (lambda c: c["datasets"].update(ffhq={"images": "ffhq256", "prior": {"name": "gaussian_fit"}}),
     ["datasets.ffhq", "shape", "DIPBENCH_FFHQ_ROOT"]),
    (lambda c: c.update(plugins=["no_such_plugin_module"]), ["plugins", "no_such_plugin_module"]),
    (lambda c: c["datasets"]["skimage32_gauss"].update(n_images="4"), ["n_images", "'4'"]),
    (lambda c: c.update(batch_size=0), ["batch_size", "0"]),
    (lambda c: c.update(device="gpu"), ["device", "gpu"]),
    (lambda c: c.update(resources={"solve": {"mem_mb": "lots"}}), ["mem_mb", "lots"]),
])
def test_bad_config_fails_naming_the_key(cfg, mutate, needles, monkeypatch):
    monkeypatch.delenv("DIPBENCH_FFHQ_ROOT", raising=False)
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_bad_config_stops_snakemake_before_any_job(tmp_path, cfg):
    """The real pairing (DDRM needs an SVD; phase retrieval has none) through snakemake -n."""
    cfg["results"] = str(tmp_path / "res")
    cfg["tasks"]["pr"] = {"operator": "phase_retrieval", "sigma_y": 0.05}
    r = snakemake(write_cfg(tmp_path / "bad.yaml", cfg), "-n", cores="1")
    assert r.returncode != 0
    assert "solvers.ddrm x tasks.pr" in r.stdout + r.stderr
    assert not (tmp_path / "res").exists()


def test_paper_grids_validate_without_data(monkeypatch):
    """Every shipped paper grid validates (registry names, every operator built on each dataset's
    shape, solver needs vs operator provides) with no dataset folder and no checkpoint."""
    for k in ("DIPBENCH_FFHQ_ROOT", "DIPBENCH_IMAGENET_ROOT", "DIPBENCH_CELEBAHQ_ROOT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DIPBENCH_RESOURCES", "/nonexistent-dipbench-resources")
    paths = sorted((ROOT / "config" / "paper").glob("*.yaml"))
    assert paths
    for p in paths:
        with open(p) as f:
            c = yaml.safe_load(f)
        validate(c)
        assert len(c["seeds"]) == 4, p


# ---------------------------------------------------------------------------------- inputs
def test_blown_up_but_finite_image_counts_as_diverged():
    """Finite values far outside the image range (MAP-GA(D) at sigma_y = 0.05 reaches ~1e19) are a
    divergence too, not a score: the reasons name NaN/inf and blow-up apart; usable images pass."""
    out = torch.zeros(4, 3, 2, 2)
    out[1, 0, 0, 0] = float("inf")
    out[2, 1, 1, 1] = -3.4e19
    out[3] = 2.5                                      # unclipped but sane: not diverged
    why = P.divergence_reasons(out)
    assert why[0] is None and why[3] is None
    assert "non-finite" in why[1]
    assert "3.4e+19" in why[2] and "blown up" in why[2]
    assert P.divergence_reasons(torch.full((1, 5), P.DIVERGED_ABS)) == [None]


def test_verify_file_names_file_problem_and_fix(tmp_path):
    f = tmp_path / "img.png"
    f.write_bytes(b"x" * 100)
    good = __import__("hashlib").sha256(b"x" * 100).hexdigest()
    assert verify_file(f, good, "fix it") == f
    with pytest.raises(IntegrityError, match=r"missing file: .*nope\.png.*Fix: get it"):
        verify_file(tmp_path / "nope.png", good, "get it")
    f.write_bytes(b"x" * 60)                                       # truncated
    with pytest.raises(IntegrityError) as e:
        verify_file(f, good, "re-download with `snakemake prefetch --cores 1`")
    assert str(f) in str(e.value) and "sha256" in str(e.value) and "prefetch" in str(e.value)
    with pytest.raises(IntegrityError, match="60 bytes, expected 100"):
        verify_file(f, None, "x", size=100)
    f.write_bytes(b"x" * 100)                                      # the cache stamp follows the file
    verify_file(f, good, cache=True)
    assert (tmp_path / "img.png.verified").exists()
    f.write_bytes(b"y" * 100)
    with pytest.raises(IntegrityError):
        verify_file(f, good, cache=True)


def test_verify_manifest_reports_every_bad_file(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(bytes([i]) * 10)
    man = tmp_path / "m.sha256"
    write_manifest(man, tmp_path, ["0.png", "1.png", "2.png"])
    assert len(verify_manifest(man, tmp_path)) == 3
    (tmp_path / "1.png").write_bytes(b"\x01" * 5)
    (tmp_path / "2.png").unlink()
    with pytest.raises(IntegrityError) as e:
        verify_manifest(man, tmp_path, fix_hint="restore the dataset")
    msg = str(e.value)
    assert "2 of 3" in msg and "1.png" in msg and "2.png" in msg and "restore the dataset" in msg


def test_missing_and_corrupt_dataset_images_fail_naming_the_file(tmp_path):
    """Folder datasets: a missing image and a truncated one both stop the measure step, naming it."""
    root = tmp_path / "ffhq"
    root.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(root / "00000.png")
    cfg = {"datasets": {"ffhq": {"images": "ffhq256", "params": {"root": str(root)}, "n_images": 2,
                                 "prior": {"name": "gaussian_fit"}}}}
    with pytest.raises(FileNotFoundError) as e:
        P.load_images(cfg, "ffhq")
    assert "00001" in str(e.value) and "DIPBENCH_FFHQ_ROOT" in str(e.value)
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(root / "00001.png")
    data = (root / "00001.png").read_bytes()
    (root / "00001.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(P.InputError) as e:
        P.load_images(cfg, "ffhq")
    assert "00001.png" in str(e.value) and "corrupt" in str(e.value)


def test_missing_and_corrupt_checkpoint_fail_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPBENCH_RESOURCES", str(tmp_path))
    cfg = {"datasets": {"ffhq": {"images": "ffhq256", "prior": {"name": "adm_ffhq256"}}}}
    with pytest.raises(FileNotFoundError) as e:
        P.build_prior(cfg, "ffhq")
    assert "ffhq_10m.pt" in str(e.value) and "prefetch" in str(e.value)
    ck = tmp_path / "checkpoints" / "ffhq_10m.pt"
    ck.parent.mkdir(parents=True)
    # garbled downloads: random bytes make the unpickler fail in many ways (UnpicklingError,
    # IndexError "pop from empty list", KeyError, ...); each is reported as a read failure
    rng = np.random.default_rng(0)
    for _ in range(40):
        ck.write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
        with pytest.raises(P.InputError) as e:
            P.build_prior(cfg, "ffhq")
        assert str(ck) in str(e.value) and "prefetch" in str(e.value)
    import pickle
    real = pickle.dumps({"a": 1}, protocol=2)             # a truncated pickle
    ck.write_bytes(real[: len(real) // 2])
    with pytest.raises(P.InputError):
        P.build_prior(cfg, "ffhq")


# ---------------------------------------------------------------------------------- determinism
def test_same_config_is_bitwise_reproducible_and_seeds_differ(tmp_path):
    """measure + solve twice on CPU: bitwise-identical y and reconstructions; seed 1 differs.
    (The trained EDM U-Net prior: a network, and no exact-MAP solve to slow the measure step.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on a loaded 2-core machine spin: 50x slower here
    try:
        _reproducible(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _reproducible(tmp_path):
    cfg = ci_cfg()
    cfg["datasets"][DS].update(n_images=2, prior={"name": "edm_unet"})
    cfg["batch_size"] = 2
    cfg["solvers"] = {"vml_map": {"params": {"steps": 2, "iters": 2}}, "ddrm": {"params": {"steps": 3}}}
    validate(cfg)
    meas = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
        P.measure(cfg, DS, "sr_x2", seed, tmp_path / tag / "meas")
        meas[tag] = np.load(tmp_path / tag / "meas" / "measurement.npz")["y"]
    assert np.array_equal(meas["a"], meas["b"]) and not np.array_equal(meas["a"], meas["c"])
    for solver in ("vml_map", "ddrm"):
        out = {}
        for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
            info = P.solve(cfg, DS, "sr_x2", solver, seed, tmp_path / tag / "meas", tmp_path / tag / solver,
                           log=lambda *_: None)
            out[tag] = (np.load(tmp_path / tag / solver / "recon.npz")["recon"], info["config_hash"])
        assert np.array_equal(out["a"][0], out["b"][0]) and out["a"][1] == out["b"][1], solver
        assert not np.array_equal(out["a"][0], out["c"][0]) and out["a"][1] != out["c"][1], solver


# ---------------------------------------------------------------------------------- profiles
def test_slurm_profile_resolves_and_solve_gets_a_gpu(tmp_path):
    """`--profile slurm` from the repo root resolves slurm/config.yaml (executor slurm) and the
    solve jobs ask for one GPU (CPU jobs for none); a dry run needs no sbatch."""
    cfg = small_cfg(tmp_path / "res", {"vml_map": {"params": {"steps": 2, "iters": 3}}}, device="auto")
    cfg.pop("resources", None)  # the rules' own defaults (the ci config lowers them)
    r = snakemake(write_cfg(tmp_path / "cfg.yaml", cfg), "-n", "--profile", "slurm", cores="all")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Using profiles slurm" in out
    solve = re.search(r"rule solve:\n(?:.*\n)*?\s+resources: (.*)", out).group(1)
    assert "gpu=1" in solve and "mem_mb=4000" in solve
    measure = re.search(r"rule measure:\n(?:.*\n)*?\s+resources: (.*)", out).group(1)
    assert "gpu" not in measure


def test_solve_resources_scale_with_dataset_and_attempt():
    c = {"device": "auto", "datasets": {"big": {"images": "ffhq256", "shape": [3, 256, 256], "n_images": 1000,
                                               "prior": {"name": "adm_ffhq256"}}}}
    r1, r2 = C.solve_resources(c, "big", 1), C.solve_resources(c, "big", 2)
    assert r1["gpu"] == 1 and r1["mem_mb"] == 32000 and r1["runtime"] == 1000
    assert r2["mem_mb"] == 2 * r1["mem_mb"] and r2["runtime"] == 2 * r1["runtime"]
    c["resources"] = {"solve": {"runtime": 90, "gpu": 2}}
    assert C.solve_resources(c, "big") == dict(mem_mb=32000, runtime=90, gpu=2)


def test_environment_error_fails_the_job_and_keeps_the_retry_token(tmp_path, monkeypatch):
    """A missing checkpoint is not a result: solve_or_record re-raises (the job fails, Snakemake
    retries it), notes the error beside the run dir and leaves the failure counter unchanged."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = ci_cfg()
        cfg["datasets"][DS].update(n_images=2, prior={"name": "edm_unet"})
        P.measure(cfg, DS, "sr_x2", 0, tmp_path / "meas")
        cfg["datasets"][DS]["prior"] = {"name": "adm_ffhq256"}
        monkeypatch.setenv("DIPBENCH_RESOURCES", str(tmp_path / "nothing"))
        rd = tmp_path / "runs" / "ddrm" / "seed0"
        with pytest.raises(FileNotFoundError, match="ffhq_10m.pt"):
            P.solve_or_record(cfg, DS, "sr_x2", "ddrm", 0, tmp_path / "meas", rd, log=lambda *_: None)
        marker = json.loads(P.failure_marker(rd).read_text())
        assert marker["status"] == "error" and "ffhq_10m.pt" in marker["reason"]
        assert P.failure_count(rd) == 0 and not (rd / "run.json").exists()
    finally:
        torch.set_num_threads(threads)
