"""A step that does nothing, through the Python SDK: the per-language overhead baseline."""

import weft


@weft.step
def noop() -> None:
    pass
