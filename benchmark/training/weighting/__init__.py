"""How the task losses are combined: Dynamic Weight Averaging (``dwa.py``), the paper's weighting."""
