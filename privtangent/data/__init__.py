"""Data sets with stable sample IDs: Fashion-MNIST, digits, image folders."""

from privtangent.data.dataset import LabeledData
from privtangent.data.image_folder import load_image_folder
from privtangent.data.tasks import TASKS, load_task

__all__ = ["LabeledData", "TASKS", "load_image_folder", "load_task"]
