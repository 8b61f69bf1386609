"""
Scripts of art-asr-ext, each run as ``python benchmarks/<name>.py``: speed and memory measurements that print
ratios (``attack_overhead``, ``batching_speed``, ``channels_last_speed``, ``dropout_speed``, ``memory_bound``,
``ray_speed``, ``training_speed``, ``vocoder_speed``, ``whisper_speed``, ``espnet_decoding``), the embedded models'
corpus, training and cards (``synthesize_corpus``, ``train``, ``train_embedded``, ``model_cards``), the report's
screenshot (``report_screenshot``) and the GPU checks (``gpu_check.sh``, ``gpu_train_embedded.sh``). ``run.py`` is the
Table I runner's command line, the same as ``art-asr-benchmark`` (:mod:`art_asr_ext.benchmark.cli`), which lives in
the package.
"""
