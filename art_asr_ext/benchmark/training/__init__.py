"""Training side of the benchmarks: the offline synthetic corpus and the recipes that train the embedded models."""
