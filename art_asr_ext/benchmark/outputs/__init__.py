"""
What a run writes from its results: Table I and its companions (:mod:`~.tables`), the figures (:mod:`~.plots`), the
attack-strength axis (:mod:`~.strength`), the transfer matrix (:mod:`~.transfer_matrix`), the evaluation checks
(:mod:`~.checks`) and report.html (:mod:`~.report`), all from utterance rows and the grid
(:mod:`art_asr_ext.benchmark.grid`) and scored by :mod:`~.scores`. Neither torch nor ART is imported here, so
``art-asr-benchmark report`` runs without them.

| Paper link: https://arxiv.org/abs/2103.17122
"""
