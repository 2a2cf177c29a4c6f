"""Type stubs of the numpy-free bootstrap index generator (numpy's PCG64 stream, bit for bit)."""

from array import array

HAVE_INT128: bool

def resample_indices(n: int, n_bootstrap: int, seed: int | None) -> array[int]: ...
def _integers(high: int, count: int, seed: int | None, emulated: bool) -> array[int]: ...
