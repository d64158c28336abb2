"""Measurements behind documented choices where the paper is silent: each study trains the same
cells under variants of one choice, prints a table and writes a CSV, and docs/ quotes its command
and numbers next to the choice (``dose_scale.py``: the dose loss scale; ``ctab_relu.py``: CTAB's
embedding activation; ``aggregation_precision.py``: float64 vs float32 aggregation of the task
Jacobian). ``common.py`` trains one variant cell."""
