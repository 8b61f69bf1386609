"""
Synthesise the offline training corpus (or the embedded evaluation set) with Piper: a thin wrapper of
:mod:`art_asr_ext.benchmark.training.synthesize` (``--help`` for the options and the documented commands).
"""

import sys

from art_asr_ext.benchmark.training.synthesize import main

if __name__ == "__main__":
    sys.exit(main())
