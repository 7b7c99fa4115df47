"""Data: images as float32 (N, C, H, W) in [0, 1] and int64 labels (N,); normalization lives in the model.

- ``builtin``: the built-in sets by name (``load_dataset``), each a ``Dataset``: the training and the test
  split a model is trained and checked on, with the statistics its ``Normalize`` uses;
- ``sources``: one split to evaluate, read in batches (``load_data``: a built-in name, an ImageFolder folder
  streamed from disk, an ``.npz``/``.pt`` file), behind one interface, ``DataSource``;
- ``arrays``: the ``.npz``/``.pt`` files of images and labels, read and checked (their layouts, uint8 or
  [0, 1], labels against the class names);
- ``training``: training data given as two sources (``advgrad train --data ... --test-data ...``);
- ``files``: the readers of untrusted files (IDX, ``.npz``, tensors; CIFAR-10's pickles in
  ``_cifar_pickle``): nothing in a file runs code, every fault is one ``DataError`` line.
"""

from advgrad.data.builtin import DataNotFound, Dataset, batches, load_dataset
from advgrad.data.files import DataError
from advgrad.data.sources import DataSource, FolderSource, TensorSource, load_data, source_of
from advgrad.data.training import load_training_data

__all__ = ["DataError", "DataNotFound", "DataSource", "Dataset", "FolderSource", "TensorSource", "batches",
           "load_data", "load_dataset", "load_training_data", "source_of"]
