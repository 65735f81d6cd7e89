"""Base models: timm ViTs by name, local safetensors checkpoints, the embedded default."""

from privtangent.models.pretrain import DEFAULT_MODEL, pretrained_base
from privtangent.models.vit import build_vit, load_checkpoint, read_safetensors, replace_head

__all__ = ["DEFAULT_MODEL", "build_vit", "load_checkpoint", "pretrained_base", "read_safetensors", "replace_head"]
