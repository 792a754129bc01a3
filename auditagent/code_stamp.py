"""What a parse kept on disk depends on besides its input: the agent's version and the
source files of the code that parsed it (name, size, mtime: cheap to read). An upgrade or
an edited parser changes the stamp, so a kept parse is made again, never reused."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


def code_stamp(files: Iterable[Path]) -> str:
    from auditagent import __version__

    parts = [__version__]
    for f in files:
        try:
            st = Path(f).stat()
            parts.append(f"{Path(f).name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{Path(f).name}:-")
    return "\n".join(parts)
