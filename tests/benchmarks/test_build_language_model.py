"""What the embedded models' word language model learns from: never a dev or test sentence."""

from pathlib import Path

from benchmarks.build_language_model import language_model_sentences


def write_split(root: Path, chapter: str, transcripts: list) -> Path:
    directory = root / "9001" / chapter
    directory.mkdir(parents=True)
    lines = [f"9001-{chapter}-{index:04d} {transcript}" for index, transcript in enumerate(transcripts)]
    (directory / f"9001-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_further_text_leaves_out_the_held_out_and_training_sentences(tmp_path):
    train = write_split(tmp_path / "train", "1", ["THE FIRST TRAINING SENTENCE", "A SECOND ONE HERE"])
    dev = write_split(tmp_path / "dev", "2", ["THIS IS THE DEV SENTENCE"])
    test = write_split(tmp_path / "test", "3", ["AND THIS ONE IS FOR TESTING"])
    long_sentence = " ".join(["word"] * 40)
    text = tmp_path / "sentences.tsv"
    text.write_text(
        "id\ttext\n"
        "LJ1\tThe first training sentence.\n"
        "LJ2\tThis is the dev sentence!\n"
        "LJ3\tAnd this one is for testing.\n"
        f"LJ4\t{long_sentence}.\n"
        "LJ5\tIt cost 2 dollars in 1850.\n"
        "LJ6\tIt cost 2 dollars in 1850.\n"
    )

    transcripts, extra = language_model_sentences(train, [text], [dev, test])

    assert transcripts == ["THE FIRST TRAINING SENTENCE", "A SECOND ONE HERE"]
    # Longer than the corpus's sentences, numbers written out as the voice read them, each sentence once.
    assert extra == [long_sentence.upper(), "IT COST TWO DOLLARS IN EIGHTEEN FIFTY"]


def test_without_further_text_the_model_learns_the_training_transcripts_only(tmp_path):
    train = write_split(tmp_path / "train", "1", ["ONLY THIS"])
    assert language_model_sentences(train, [], []) == (["ONLY THIS"], [])
