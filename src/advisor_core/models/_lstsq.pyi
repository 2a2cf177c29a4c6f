"""Type stub of the numpy entry point of the compiled least-squares solver."""

from typing import Any, Optional

import numpy as np

def lstsq(X: Any, y: Any, rcond: Optional[float] = ...) -> np.ndarray: ...
