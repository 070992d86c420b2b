"""Stand-alone-trained ground truth for proxy studies (``genas bench``)."""
from .runner import BenchConfig, run_bench, sample_archs

__all__ = ["BenchConfig", "run_bench", "sample_archs"]
