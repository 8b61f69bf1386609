"""
Progress bars: tqdm's, or a silent stand-in where tqdm (in the `benchmark` extra) is not installed.

| Paper link: https://arxiv.org/abs/2103.17122
"""


class _Silent:
    """What a run calls on a progress bar, doing nothing."""

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def update(self, count: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


def progress_bar(**kwargs):
    """
    :param kwargs: tqdm's arguments (`total`, `desc`, `disable`...).
    :return: A tqdm bar that adapts to the terminal's width, or a silent stand-in without tqdm.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent()
    return tqdm(dynamic_ncols=True, **kwargs)
