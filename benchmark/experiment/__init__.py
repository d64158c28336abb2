"""Running the grid: profiles (``profiles.py``), one cell's configuration, identity and data
(``cell.py``), the runner (``runner.py``), the crash-safe result store (``store.py``), where cells
run (``parallel.py``: joblib, Dask, Slurm) and the command line of ``reproduce.py`` (``cli.py``)."""
