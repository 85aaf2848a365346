import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _log import logger  # noqa: E402

import torch  # noqa: E402

from dipbench.pipeline import solve_or_record  # noqa: E402

torch.set_num_threads(max(1, int(snakemake.threads)))  # noqa: F821
w = snakemake.wildcards  # noqa: F821
log = logger(snakemake)  # noqa: F821
info = solve_or_record(snakemake.config, w.dataset, w.task, w.solver, int(w.seed),  # noqa: F821
                       Path(snakemake.input.npz).parent, Path(snakemake.output.run).parent, log)  # noqa: F821
if info["status"] == "failed":
    log(f"status failed: {info['reason']}")
else:
    log(f"status {info['status']}, {info['wall_per_image_s']:.3f}s/image, {info['nfe_per_image']:.0f} NFE/image")
