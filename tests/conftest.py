"""Shared fixtures: tiny timm ViTs and small slices of the embedded default data."""

from __future__ import annotations

import pytest
import timm
import torch

# Tiny tensors with several OpenMP threads on a loaded 2-core machine spend their time in
# barrier stalls (measured ~100x slower); pytest-xdist already runs one worker per core.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one torch thread, and whatever it (or a CLI it runs) sets is undone."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_tiny_vit(embed_dim: int = 32, depth: int = 2, num_heads: int = 2, num_classes: int = 5,
                  img_size: int = 28, patch_size: int = 7, in_chans: int = 1, seed: int = 0, **kwargs):
    """A tiny timm VisionTransformer (random init, seeded)."""
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=img_size, patch_size=patch_size,
                             in_chans=in_chans, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                             num_classes=num_classes, **kwargs).eval()


@pytest.fixture
def tiny_vit():
    return make_tiny_vit()


@pytest.fixture(scope="session")
def near_small():
    """(train, test): 300 / 200 samples of Fashion-MNIST classes 5–9."""
    from privtangent.data import load_task

    return load_task("fashion-near", "train", limit=300), load_task("fashion-near", "test", limit=200)


@pytest.fixture(scope="session")
def base_model():
    """The embedded default base model (built once and cached; ~2 min on first use)."""
    from privtangent.models import pretrained_base

    model, _ = pretrained_base(progress=False)
    return model
