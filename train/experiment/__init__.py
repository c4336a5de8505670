"""Proxy experiments: a grid of small training runs from one YAML, a table, plots and law fits."""
