"""
Train one of the study's model variants in resumable pieces: a thin wrapper of
:mod:`art_asr_ext.benchmark.training.train` (``python -m art_asr_ext.benchmark.training.train --help``).
"""

import sys

from art_asr_ext.benchmark.training.train import main

if __name__ == "__main__":
    sys.exit(main())
