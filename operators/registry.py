from dipbench.registry import Registry

OPERATORS = Registry("operator")
register = OPERATORS.register
