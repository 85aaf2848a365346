"""Shared test fixtures-as-functions: random Gaussian priors with known spectra."""
import math

import torch

import priors


def random_gaussian(shape, lo=3e-4, hi=0.3, seed=0, mean_scale=0.1):
    """N(mu, Q diag(ev) Q^T) with log-spaced eigenvalues in [lo, hi] and a random orthogonal Q."""
    n = math.prod(shape)
    g = torch.Generator().manual_seed(seed)
    ev = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    mu = mean_scale * torch.randn(shape, generator=g, dtype=torch.float64)
    return priors.build("gaussian", mean=mu, cov=(q * ev) @ q.T), g


def compile_latex_tables(tex_dir, work_dir) -> None:
    """pdflatex on one document that inputs every ``*.tex`` table of ``tex_dir`` (booktabs and
    longtable loaded, UTF-8 input: a raw Unicode symbol without a LaTeX form is an error).  Skips the
    calling test when no pdflatex is installed (Debian: texlive-latex-base texlive-latex-recommended)."""
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.skip("no pdflatex: on Debian `apt-get install -y texlive-latex-base texlive-latex-recommended`")
    tables = sorted(Path(tex_dir).glob("*.tex"))
    assert tables, f"no .tex table under {tex_dir}"
    body = "\n\\clearpage\n".join(f"\\input{{{t.resolve().as_posix()}}}" for t in tables)
    doc = Path(work_dir) / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
                   "\\usepackage{booktabs,longtable,amssymb}\n\\begin{document}\n" + body + "\n\\end{document}\n")
    r = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=work_dir,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and (Path(work_dir) / "tables.pdf").is_file(), r.stdout[-3000:]
