"""
Text to token ids and back, exactly as an ESPnet2 ASR model was trained and decodes.

ESPnet's training preprocessor cleans the text (``cleaner``), splits it with the model's tokenizer (``token_type``:
characters with ``<space>``, SentencePiece BPE, words, ...) and maps tokens to ids with the token list, sending every
token it does not know to ``<unk>``. Silently training or attacking toward ``<unk>`` hides mistakes (lower-case text
for an upper-case model, punctuation), so :class:`ESPnetTextCodec` reports such characters instead.

| Paper link: https://arxiv.org/abs/1804.00015
"""

from typing import List, Optional, Sequence

UNK_SYMBOL = "<unk>"
SPACE_SYMBOL = "<space>"
BLANK_SYMBOL = "<blank>"
SOS_EOS_SYMBOL = "<sos/eos>"
# SentencePiece's word-boundary marker.
_SPM_SPACE = "\u2581"


class ESPnetTextCodec:
    """
    Encode transcripts into an ESPnet2 model's token ids and decode ids into text.

    | Paper link: https://arxiv.org/abs/1804.00015
    """

    def __init__(
        self,
        token_list: Sequence[str],
        token_type: str = "char",
        bpemodel: Optional[str] = None,
        non_linguistic_symbols: Optional[str] = None,
        cleaner: Optional[str] = None,
        g2p: Optional[str] = None,
    ) -> None:
        """
        :param token_list: The model's output tokens, in output-layer order.
        :param token_type: `char`, `bpe`, `word`, ... as in the training config.
        :param bpemodel: SentencePiece model file (`token_type="bpe"`).
        :param non_linguistic_symbols: File of non-linguistic symbols kept whole by the char tokenizer.
        :param cleaner: ESPnet text cleaner name applied before tokenizing (e.g. `tacotron`), or None.
        :param g2p: ESPnet grapheme-to-phoneme converter for phoneme token types, or None.
        """
        self.token_list = list(token_list)
        self.token_type = token_type
        self.bpemodel = bpemodel
        if UNK_SYMBOL not in self.token_list:
            raise ValueError(
                f"The token list has no {UNK_SYMBOL!r} token. Found the first tokens: {self.token_list[:5]}"
            )
        if token_type == "bpe" and bpemodel is None:
            raise ValueError("token_type 'bpe' needs bpemodel, the SentencePiece model the token list was made with.")
        self._index = {token: i for i, token in enumerate(self.token_list)}
        self._unk = self._index[UNK_SYMBOL]
        self._dropped = {self._index.get(s) for s in (BLANK_SYMBOL, SOS_EOS_SYMBOL)} - {None}
        self._tokenizer = self._build_tokenizer(token_type, bpemodel, non_linguistic_symbols, g2p)
        self._cleaner = None
        if cleaner is not None:
            from espnet2.text.cleaner import TextCleaner

            self._cleaner = TextCleaner(cleaner)

    @staticmethod
    def _build_tokenizer(token_type: str, bpemodel: Optional[str], non_linguistic_symbols: Optional[str], g2p):
        # The generic builder imports every tokenizer ESPnet has (seconds); the two LibriSpeech ones are cheap.
        if token_type == "char":
            from espnet2.text.char_tokenizer import CharTokenizer

            return CharTokenizer(non_linguistic_symbols=non_linguistic_symbols, space_symbol=SPACE_SYMBOL)
        if token_type == "bpe":
            from espnet2.text.sentencepiece_tokenizer import SentencepiecesTokenizer

            return SentencepiecesTokenizer(bpemodel)
        from espnet2.text.build_tokenizer import build_tokenizer

        return build_tokenizer(
            token_type=token_type,
            bpemodel=bpemodel,
            non_linguistic_symbols=non_linguistic_symbols,
            g2p_type=g2p,
            space_symbol=SPACE_SYMBOL,
        )

    def tokens(self, text: str) -> List[str]:
        """The tokens of `text` after the model's cleaner and tokenizer."""
        if self._cleaner is not None:
            text = self._cleaner(text)
        return self._tokenizer.text2tokens(text)

    def unknown_characters(self, text: str) -> List[str]:
        """Characters of `text` that only map to `<unk>`, sorted; empty if the model can represent all of `text`."""
        unknown = set()
        for token in self.tokens(text):
            if token not in self._index:
                unknown.update(token.replace(_SPM_SPACE, "") or token)
        return sorted(unknown)

    def encode(self, text: str) -> List[int]:
        """
        Token ids of `text`.

        :raises ValueError: If a character of `text` would become `<unk>`.
        """
        unknown = self.unknown_characters(text)
        if unknown:
            raise ValueError(
                f"{text!r} has characters the model's {self.token_type} tokenizer cannot represent: {unknown}."
            )
        return [self._index[token] for token in self.tokens(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids, as ESPnet's `Speech2Text` makes it (blank and `<sos/eos>` dropped, `<unk>` kept)."""
        tokens = [self.token_list[i] for i in ids if i not in self._dropped]
        return self._tokenizer.tokens2text(tokens)
