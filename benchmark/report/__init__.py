"""The Table 2 report, from any long metrics CSV (docs/results-schema.md); imports no torch.

``inputs.py`` reads and checks the CSVs, ``stats.py`` computes Δ_task (eq. 3), Δ_mean, ranks, the
average block and the seed statistics, ``paper.py`` holds the published Table 2 (``reference/``)
and the comparison with it, ``render.py`` writes LaTeX and Markdown, ``plots.py`` the figures,
``write.py`` all of a report's files (``write_report``), and ``__main__.py`` the command line
``python -m benchmark.report``.
"""
