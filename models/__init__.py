"""The methods of Table 2.

``catalog.py`` names them (``METHODS``, ``BASELINE``; torch-free, so that the report can read it),
``registry.py`` maps each name to its class (``MODELS``) and builds models (``build_model``),
``encoder.py`` and ``blocks.py`` hold the shared parts, ``base.py`` what every method shares, and
each method lives in its own file: the paper's ``stl.py``, ``hps.py``, ``mtan.py``, ``ctan.py``;
``cross_stitch.py`` and ``mmoe.py``; and CTAN's two ablations, ``ctae_only.py`` and ``ctab_only.py``.
"""
