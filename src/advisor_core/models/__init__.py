"""Regression on records: least squares, model kinds, selection, intervals, predictors.

The compiled kernels (``_solver`` with ``_qr_kernels.c``, ``_pipeline``, ``_resampling``,
``_guarded``, ``_crossval``, ``_lstsq``, ``_buffers``, sharing ``_blas.pxd``) do arithmetic on
typed buffers. The Python modules check and compose them: ``arrays`` (buffer checks),
``linalg``, ``resampling`` and ``extrapolation`` (the kernels' faces), ``features`` (a
scenario's features and training target), ``kinds``, ``selection`` and ``intervals`` (model
kinds, out-of-fold choice, Student-t intervals), ``floors`` (idle-baseline floor), ``power``
(the stream-count model), ``fitted``, ``prediction``, ``_model_file`` and ``modeling`` (the
predictors, their state, answers and model file). Imports ``advisor_core.data`` only, never
``advisor_core.economics``.
"""
