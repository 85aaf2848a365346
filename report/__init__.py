"""Aggregation, tables, plots and figure grids."""
