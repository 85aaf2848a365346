"""Config validation fails before any job runs and names the bad key and the valid choices."""
import copy
import subprocess
import sys

import pytest
import yaml

from dipbench.config import ConfigError, validate
from dipbench.paths import ROOT


@pytest.fixture
def cfg():
    with open(ROOT / "config" / "ci.yaml") as f:
        return yaml.safe_load(f)


def test_shipped_configs_validate(cfg):
    validate(copy.deepcopy(cfg))
    with open(ROOT / "config" / "default.yaml") as f:
        validate(yaml.safe_load(f))


@pytest.mark.parametrize("mutate,needles", [
    (lambda c: c["solvers"].update(nope={}), ["solvers.nope.solver", "unknown solver 'nope'", "vml_map"]),
    (lambda c: c["tasks"].update(t={"operator": "blurr"}), ["tasks.t.operator", "unknown operator 'blurr'", "sr_block"]),
    (lambda c: c["datasets"]["skimage32_gauss"].update(images="imagenet9"),
     ["datasets.skimage32_gauss.images", "unknown dataset 'imagenet9'", "skimage32"]),
    (lambda c: c["datasets"]["skimage32_gauss"]["prior"].update(name="gauss"),
     ["datasets.skimage32_gauss.prior.name", "unknown prior 'gauss'", "gaussian"]),
    (lambda c: c.update(metrics=["psnr", "lpipz"]), ["metrics", "unknown metric 'lpipz'", "ssim"]),
    (lambda c: c["solvers"]["vml_map"]["params"].update(stepz=3), ["solvers.vml_map.params", "stepz", "iters"]),
    (lambda c: c["tasks"]["sr_x2"].update(sigma_y=-0.1), ["sigma_y", "-0.1"]),
    (lambda c: c.update(seeds=[0, "one"]), ["seeds", "one"]),
    (lambda c: c.update(batch_size=2.5), ["batch_size", "2.5"]),
    (lambda c: c["tasks"]["sr_x2"].update(colour="red"), ["colour"]),
])
def test_bad_config_names_the_key(cfg, mutate, needles):
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_solver_needing_svd_with_operator_without_one(cfg, monkeypatch):
    """A solver whose needs the operator lacks is rejected, naming both."""
    import solvers

    cls = solvers.get("ddrm")
    monkeypatch.setattr(cls, "needs", frozenset({"forward", "adjoint", "svd", "magic"}))
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert "solvers.ddrm" in str(e.value) and "magic" in str(e.value)


def test_snakemake_rejects_bad_config_before_any_job(tmp_path, cfg):
    cfg["solvers"]["bogus"] = {"solver": "bogus_solver"}
    cfg["results"] = str(tmp_path / "res")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "unknown solver 'bogus_solver'" in r.stdout + r.stderr
    assert not (tmp_path / "res").exists()
