"""advisor-core: power, cost and efficiency modelling for video-transcoding benchmarks."""

__version__ = "0.3.0"
