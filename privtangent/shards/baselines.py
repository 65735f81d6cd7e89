"""Baselines for composition and unlearning: Model Soup and SISA, on non-linear shard models.

Both use the same shards, the same TrainConfig (epochs, batch size, seed) and the same
fine-tuned parameters as the tangent shards, only without linearization
(``NonLinearViT``, ``config.tangent = False``):

- **Model Soup** (Wortsman et al. 2022): average the shard models' fine-tuned weights
  (``NonLinearViT.trainable_state_dict()``) into one model: O(1) inference, but for a
  non-linear network the average of weights is not the average of outputs.
- **SISA** (Bourtoule et al. 2021): keep every shard model, aggregate their outputs at
  inference (mean of the logits, or a majority vote): O(N) inference. Forgetting drops a
  shard's model or retrains it without the forgotten samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from privtangent.errors import ConfigError, PrivtangentError
from privtangent.finetune import FineTuneModel
from privtangent.shards.compose import compose
from privtangent.train.evaluate import predict_logits

AGGREGATES = ("mean", "vote")


def model_soup(states: Sequence[Mapping[str, Tensor]], weights: Sequence[float] | None = None) -> dict[str, Tensor]:
    """Uniform (or weighted) Model Soup of non-linear fine-tuned weights.

    The arithmetic is the same weighted average as ``compose``; what differs is what it
    means: for tangent Δw it is the output ensemble, for non-linear weights it is not.
    """
    return compose(states, weights)


def soup_model(model: FineTuneModel, states: Sequence[Mapping[str, Tensor]],
               weights: Sequence[float] | None = None) -> FineTuneModel:
    """``model`` (a NonLinearViT with the shards' shared starting point) holding the soup."""
    model.load_trainable(model_soup(states, weights))
    return model.eval()


def aggregate_logits(outputs: Sequence[Tensor], how: str = "mean") -> Tensor:
    """Combine per-model logits (each (B, K)): mean of the logits, or a majority vote.

    The vote returns one-hot-like scores: vote counts, ties broken by the mean logits.
    """
    if how not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    if not outputs:
        raise PrivtangentError("no shard models to aggregate")
    stacked = torch.stack(list(outputs))
    mean = stacked.mean(0)
    if how == "mean":
        return mean
    votes = torch.nn.functional.one_hot(stacked.argmax(-1), stacked.shape[-1]).sum(0).to(mean.dtype)
    spread = mean - mean.min(-1, keepdim=True).values
    return votes + spread / (spread.max(-1, keepdim=True).values + 1.0) * 0.5


class SISAEnsemble:
    """SISA: one fine-tuned model per shard, outputs aggregated at inference.

    ``states[k]`` is shard k's trainable state; ``model`` is a NonLinearViT (or a TangentViT)
    built with the shards' configuration.
    """

    def __init__(self, model: FineTuneModel, states: Mapping[int, Mapping[str, Tensor]],
                 aggregate: str = "mean") -> None:
        if aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        self.model = model.eval()
        self.states = {int(k): dict(v) for k, v in states.items()}
        self.aggregate = aggregate

    @property
    def shards(self) -> list[int]:
        return sorted(self.states)

    def remove(self, shards: Iterable[int]) -> "SISAEnsemble":
        """A copy without the given shards' models (SISA's forgetting by dropping)."""
        drop = set(shards)
        kept = {k: v for k, v in self.states.items() if k not in drop}
        if not kept:
            raise PrivtangentError("removing these shards leaves no model")
        return SISAEnsemble(self.model, kept, self.aggregate)

    def replace(self, shard: int, state: Mapping[str, Tensor]) -> "SISAEnsemble":
        """A copy with shard ``shard`` retrained (SISA's forgetting by retraining)."""
        return SISAEnsemble(self.model, {**self.states, int(shard): dict(state)}, self.aggregate)

    @torch.no_grad()
    def shard_logits(self, features: Tensor, batch_size: int = 512) -> list[Tensor]:
        out = []
        for k in self.shards:
            self.model.load_trainable(self.states[k])
            out.append(predict_logits(self.model, features, batch_size=batch_size))
        return out

    def logits(self, features: Tensor) -> Tensor:
        """Aggregated output on cached prefix features: one forward per shard model."""
        return aggregate_logits(self.shard_logits(features), self.aggregate)

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        return float((self.logits(features).argmax(-1) == labels).double().mean())
