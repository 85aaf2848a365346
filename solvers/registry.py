from dipbench.registry import Registry

SOLVERS = Registry("solver")
register = SOLVERS.register
