"""File formats: atomic writes, hashing, checkpoints with manifests."""

from privtangent.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from privtangent.io.hashing import sha256_bytes, sha256_file, tensor_hash

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "sha256_file",
    "sha256_bytes",
    "tensor_hash",
]
