from dipbench.registry import Registry

METRICS = Registry("metric")
register = METRICS.register
