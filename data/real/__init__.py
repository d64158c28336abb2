"""The real datasets, read exactly as their publishers distribute them (docs/datasets.md).

``common.py`` holds what the readers share (bad-sample policy, resizing, label tables, seeded
stratified splits), ``cache.py`` the prepared-data cache, and one module per dataset its reader.
``data.prepare`` finds, prepares and loads real data through the registry ``data.DATASETS``.

A reader module provides ``VERSION`` (bumped whenever its preprocessing changes), ``LAYOUT`` (one
line for error messages), ``SUBDIRS`` (extra places to look under a root), ``looks_like(path)``,
``inventory(root)`` (the raw files it uses; structural errors raise), ``params(size)`` (the
preprocessing parameters that key the cache), ``read(root, size, writer, bad)`` (appends samples
to a :class:`data.real.cache.EntryWriter`; returns facts for the manifest) and
``describe(manifest)``. A format's own library (Pillow, SimpleITK, nibabel) is imported only when
that format is read.
"""
