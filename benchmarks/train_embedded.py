"""
Train the embedded models in resumable pieces and checkpoint them: a thin wrapper of
:mod:`art_asr_ext.benchmark.training.embedded` (``--help`` for the options).
"""

import sys

from art_asr_ext.benchmark.training.embedded import main

if __name__ == "__main__":
    sys.exit(main())
