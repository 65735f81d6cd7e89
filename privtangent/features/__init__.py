"""Cached output of the frozen prefix: what is cached (``prefix``), how it is stored on disk
(``store``) and when it is computed, kept in memory, read from disk or purged (``cache``)."""

from privtangent.features.cache import DEFAULT_MEMORY_BYTES, FeatureCache, Features, StoredFeatureSet
from privtangent.features.prefix import prefix_state, run_prefix
from privtangent.features.store import DiskFeatures, FeatureFileError, FeatureFileWriter, read_header, read_ids

__all__ = ["DEFAULT_MEMORY_BYTES", "DiskFeatures", "FeatureCache", "FeatureFileError", "FeatureFileWriter",
           "Features", "StoredFeatureSet", "prefix_state", "read_header", "read_ids", "run_prefix"]
