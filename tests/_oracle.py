"""The scikit-learn oracle: the reference's pipeline, with numpy's rank cut-off."""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

EPS = np.finfo(float).eps


def sk_pipeline(degree: int, n_rows: int, n_features: int):
    """StandardScaler -> PolynomialFeatures(degree) -> LinearRegression (min-norm least squares).

    scikit-learn >= 1.7 cuts singular values at ``tol`` (default 1e-6); older versions, the
    reference's, and numpy's lstsq cut near machine precision, so tol is set to numpy's
    rcond=None cut-off where the parameter exists.
    """
    regression = LinearRegression()
    if "tol" in regression.get_params():
        width = math.comb(n_features + degree, degree)
        regression.set_params(tol=EPS * max(n_rows, width))
    if degree == 1:
        return make_pipeline(StandardScaler(), regression)
    return make_pipeline(StandardScaler(), PolynomialFeatures(degree), regression)
