"""Data sets with stable sample IDs: Fashion-MNIST, digits, image folders (eager or streamed)."""

from privtangent.data.dataset import ImageData, LabeledData
from privtangent.data.image_folder import ImageFolderData, load_image_folder, open_image_folder, path_id
from privtangent.data.tasks import TASKS, load_task
from privtangent.data.transforms import ImageTransform, resolve_transform

__all__ = ["ImageData", "ImageFolderData", "ImageTransform", "LabeledData", "TASKS", "load_image_folder",
           "load_task", "open_image_folder", "path_id", "resolve_transform"]
