"""Shards: parallel training, composition (paper eq. 13), exact unlearning with a ledger.

``compose(deltas, weights=None)`` is the public contract; the rest is the machinery behind
``privtangent shards ...`` and ``privtangent forget``.
"""

from privtangent.shards.baselines import SISAEnsemble, aggregate_logits, model_soup
from privtangent.shards.compose import compose
from privtangent.shards.executors import LocalPoolExecutor, RayExecutor, SerialExecutor, make_executor
from privtangent.shards.ledger import Ledger, LedgerError
from privtangent.shards.sharding import (
    ShardedModel,
    ShardMap,
    UnknownIDsError,
    make_shard_map,
    shard_data,
    task_ref,
    train_shards,
)
from privtangent.shards.unlearn import (
    AlreadyForgottenError,
    ForgetError,
    WouldEmptyError,
    commitment,
    forget,
    recover,
    verify,
)

__all__ = [
    "AlreadyForgottenError",
    "ForgetError",
    "Ledger",
    "LedgerError",
    "LocalPoolExecutor",
    "RayExecutor",
    "SISAEnsemble",
    "SerialExecutor",
    "ShardMap",
    "ShardedModel",
    "UnknownIDsError",
    "WouldEmptyError",
    "aggregate_logits",
    "commitment",
    "compose",
    "forget",
    "make_executor",
    "make_shard_map",
    "model_soup",
    "recover",
    "shard_data",
    "task_ref",
    "train_shards",
    "verify",
]
