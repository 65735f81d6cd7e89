"""Command-line options that several commands share (kept in one place so they read the same)."""

from __future__ import annotations

import argparse


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``: where models are trained and evaluated (``privtangent.device``)."""
    parser.add_argument("--device", metavar="DEVICE", default="auto",
                        help="cpu, cuda or cuda:N (default auto: cuda when available, else cpu); features and "
                             "checkpoints stay on the CPU and disk, batches move to the device")


__all__ = ["add_device_option"]
