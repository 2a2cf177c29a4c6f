"""Type aliases the package's modules share."""

from __future__ import annotations

import os
from typing import Union

#: A file path as the public functions accept it: text or an ``os.PathLike``.
PathLike = Union[str, "os.PathLike[str]"]
