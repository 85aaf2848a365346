"""python -m dipbench.check_config: a YAML syntax error names the file, line and column (Snakemake's
own message for a bad --configfile names neither); a valid file passes the Snakefile's validation."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dipbench import check_config
from dipbench.paths import ROOT


def test_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\ndatasets:\n  a: [1, 2\nbatch_size: 3\n")
    with pytest.raises(check_config.ConfigFileError) as e:
        check_config.load(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}:4:"), msg              # where the parser noticed it
    assert "line 3, column 6" in msg, msg                 # where the unclosed sequence starts
    tab = tmp_path / "tab.yaml"
    tab.write_text("a: 1\n\tb: 2\n")
    with pytest.raises(check_config.ConfigFileError, match=rf"^{tab}:2:1: .*'\\t'"):
        check_config.load(tab)


def test_validation_and_exit_status(tmp_path):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("datasets: {}\nno_such_key: 1\n")
    assert "no_such_key" in check_config.check(unknown)
    assert check_config.check(ROOT / "config" / "ci.yaml") is None
    r = subprocess.run([sys.executable, "-m", "dipbench.check_config", str(ROOT / "config" / "ci.yaml"),
                        str(unknown)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "ci.yaml: ok" in r.stdout and "no_such_key" in r.stderr
