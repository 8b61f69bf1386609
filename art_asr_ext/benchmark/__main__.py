"""``python -m art_asr_ext.benchmark``: the benchmark runner's command line (see :mod:`art_asr_ext.benchmark.cli`)."""

import sys

from art_asr_ext.benchmark.cli import main

sys.exit(main())
