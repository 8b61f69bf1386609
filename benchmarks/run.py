"""
Run a benchmark config and write the study's Table I: a thin wrapper of :mod:`art_asr_ext.benchmark.cli`, the
``art-asr-benchmark`` command (``--help`` for the options)::

    python benchmarks/run.py --preset quick --out runs/quick
    python benchmarks/run.py --config my_table.yaml --out runs/mine
"""

import sys

from art_asr_ext.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
