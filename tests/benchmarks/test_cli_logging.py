"""
The command line's console shows the run, not ESPnet's model building: ESPnet logs each weight it initialises at INFO
through the root logger, which the command line filters out (its warnings pass).
"""

import logging

from espnet2.tasks import asr

from art_asr_ext.benchmark import cli
from art_asr_ext.models.espnet_asr import build_espnet_asr, librispeech_char_tokens, transformer_asr_config

TINY = dict(d_model=16, attention_heads=2, linear_units=32, encoder_blocks=1, decoder_blocks=1)


def _messages_while_building(caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_espnet_asr(transformer_asr_config(librispeech_char_tokens(), **TINY))
        logging.getLogger("art_asr_ext.benchmark").info("Finished a cell")
        # a warning from ESPnet's own code, as `logging.warning` there makes it
        logging.getLogger().handle(
            logging.LogRecord("root", logging.WARNING, asr.__file__, 1, "an ESPnet warning", (), None)
        )
    return caplog.text


def test_espnet_info_is_dropped_and_everything_else_kept(caplog):
    assert "Vocabulary size" in _messages_while_building(caplog)  # what the filter is for
    espnet_filter = cli._WithoutESPnetInfo()
    root = logging.getLogger()
    root.addFilter(espnet_filter)
    try:
        text = _messages_while_building(caplog)
    finally:
        root.removeFilter(espnet_filter)
    assert "Vocabulary size" not in text and "Gradient checkpoint layers" not in text
    assert "Finished a cell" in text and "an ESPnet warning" in text


def test_the_command_line_leaves_the_root_loggers_filters_as_it_found_them(capsys):
    before = list(logging.getLogger().filters)
    assert cli.main(["--preset", "ci_tiny", "--dry-run"]) == 0
    assert logging.getLogger().filters == before
