"""Training and measuring one network: the loop with model selection (``loop.py``) and what it is
given (``settings.py``), tensor batches (``batches.py``), task kinds (``kinds.py``: each kind's loss,
statistics, metrics and per-case rows), the task losses of Table 1 (``losses.py``), the metrics of
Sec. 2.3 (``metrics.py``), evaluation on a split (``evaluation.py``), the one scoring path
(``scoring.py``; OpenKBP's whole patients: ``volumes.py``), checkpoints (``checkpoint.py``) and the loss
weightings (``weighting/``)."""
