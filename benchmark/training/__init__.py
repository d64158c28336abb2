"""Training and measuring one network: the loop with model selection (``loop.py``), tensor batches
(``batches.py``), the task losses of Table 1 (``losses.py``), the metrics of Sec. 2.3
(``metrics.py``), evaluation on a split (``evaluation.py``) and the loss weightings
(``weighting/``)."""
