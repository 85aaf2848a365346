"""Parity suite: our solvers against their official implementations, on problems with exact answers.

Layout (one registry per axis, as elsewhere in the harness):
* ``problems``  -- named, seeded inverse problems (prior, operator, measurement, sigma_y), each with
  a closed-form posterior (Gaussian, Gaussian mixture) or, for nonlinear operators, none;
* ``stats``     -- named statistics of a batch of reconstructions (error of the sample mean to the
  exact posterior mean, spread ratio, sliced Wasserstein, summary statistics);
* ``records``   -- one YAML file per solver x problem under ``parity/records/``: the problem,
  the statistic, the reference figure (measured once by running the official code outside this
  repository, with its commit and command), the hyper-parameter mapping, our figure, the z-score
  and the verdict (PARITY | DEVIATES | REFERENCE-BUG);
* ``runner``    -- recomputes our side of a record (``python -m benchmarks.parity``, and
  ``tests/test_parity.py`` in CI);
* ``table``     -- the Markdown table of the README section "Parity with the official
  implementations".

Monte-Carlo protocol: a statistic is computed on each of R replicates of B reconstructions
(one solver call with the measurement repeated B times, seeded per replicate); the figure is the
mean over replicates and its standard error sd / sqrt(R).  Both sides use the same B (statistics
such as the error of a sample mean depend on it); the reference side usually has more replicates.
z = (ours - reference) / sqrt(se_ours^2 + se_reference^2).
"""

from . import problems_latent  # noqa: E402,F401  (registers the latent problems and their statistics)
