"""privtangent: differential-privacy and unlearning audits for tangent vision transformers.

``privtangent.load_model(DIR)`` loads a trained model directory (``privtangent.release``). The
package itself imports nothing heavy, so that the command line starts (and ``--help`` answers)
without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load_model(directory: str | Path, base: Any = None, *, progress: bool = False) -> Any:
    """The trained model of a model directory, every file verified (``privtangent.release.load_model``)."""
    from privtangent.release import load_model as load  # torch loads here, not at `import privtangent`

    return load(directory, base, progress=progress)
