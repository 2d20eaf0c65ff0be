"""Datasets: AV-MNIST from MNIST and FSDD, MultiBench's prepared AV-MNIST, and downloads."""

from .avmnist import AVMNIST, AVMNISTConfig, Split, load_avmnist
from .multibench import load_multibench_avmnist
from .paths import DataNotFoundError, find_data_dir

__all__ = ["AVMNIST", "AVMNISTConfig", "DataNotFoundError", "Split", "find_data_dir", "load_avmnist",
           "load_multibench_avmnist"]
