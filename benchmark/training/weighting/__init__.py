"""How a training step turns the task losses into gradients: one file per method, as in LibMTL.

``catalog.py`` names the methods with their authors' default hyper-parameters (torch-free: the
CLI and the report read it), ``base.py`` holds the two kinds (a loss weighting backpropagates a
weighted sum once; a gradient weighting takes each task's gradient of the shared parameters and
aggregates them in float64: torchjd's ``backward`` and aggregators), ``registry.py`` maps names
to classes. Loss-based: ``ew``, ``dwa`` (the paper's), ``uw``, ``rlw``, ``gls``, ``famo``; gradient-based:
``mgda``, ``pcgrad``, ``cagrad``, ``nashmtl``, ``imtlg``, ``alignedmtl``, ``upgrad``, ``gradnorm``, ``graddrop``,
``config``, ``dualproj``, ``fairgrad``, ``gradvac``, ``excessmtl``, ``modo``, ``sdmgrad``, ``moco``, ``dbmtl``,
``crmogm`` (and the scalarizations ``stch``, ``pbi``, ``imtll``); bilevel (``bilevel.py``: a meta step on a
second batch and copies of the network before each update): ``autolambda``, ``moml``, ``forum``.
docs/methods.md lists each with its reference, defaults and measured cost.
"""
