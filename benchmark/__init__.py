"""The benchmark machinery, one package per concern (models and data are top-level packages):

- ``experiment/``: profiles, a cell's configuration and identity, the runner, the result store,
  the parallel back-ends and the command line of ``reproduce.py``;
- ``training/``: one network's training loop, batches, losses, metrics, evaluation and the loss
  weightings (``weighting/``);
- ``report/``: Table 2 from a metrics CSV (statistics, the paper's table, LaTeX/Markdown, plots);
  it imports no torch;
- ``api.py``: the same from Python (``run_grid``, ``load_results``, ``render_report``);
- ``speed.py``: the training-step profiler (``python -m benchmark.speed``).
"""
