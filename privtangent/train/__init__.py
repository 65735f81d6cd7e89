"""Fine-tuning: TAFT (tangent), NLFT (non-linear) and FC, with checkpoints."""

from privtangent.train.config import TrainConfig
from privtangent.train.evaluate import evaluate, predict_logits
from privtangent.train.trainer import TrainResult, fit, prepare_model

__all__ = ["TrainConfig", "TrainResult", "evaluate", "fit", "predict_logits", "prepare_model"]
