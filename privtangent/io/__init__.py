"""File formats and where files go: atomic writes (``atomic``), content hashes (``hashing``),
safetensors checkpoints with manifests (``checkpoint``), output directories (``outdir``). Import
from those modules: this package imports nothing, so the command line can check an output
directory without loading torch."""
