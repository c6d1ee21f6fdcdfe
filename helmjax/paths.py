"""Where shared data lives: `$HELMJAX_DATA_DIR`, else `../shared/data` beside the project when present."""

import os
import pathlib

_PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent


def data_dir() -> pathlib.Path:
    """The data directory; it may not exist (callers say what they looked for and where)."""
    env = os.environ.get("HELMJAX_DATA_DIR")
    if env:
      return pathlib.Path(env).expanduser()
    return _PROJECT_ROOT.parent / "shared" / "data"


def data_file(relative: str) -> pathlib.Path:
    """Path of `relative` under the data directory (may not exist)."""
    return data_dir() / relative
