from dipbench.registry import Registry

PRIORS = Registry("prior")
register = PRIORS.register
