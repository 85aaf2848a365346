from dipbench.registry import Registry

DATASETS = Registry("dataset")
register = DATASETS.register
