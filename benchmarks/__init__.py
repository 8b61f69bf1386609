"""
Benchmarks of art-asr-ext: the Table I runner (``benchmarks/run.py``), its configs, and speed measurements. This is
the only place that reads configs, writes result files or has a command line.
"""
