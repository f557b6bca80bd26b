"""Data: Fashion-MNIST (IDX), the 15 corruptions, Fashion-MNIST-C cache, ImageNet-C/CIFAR-10-C formats."""
from .cache import FMNISTC, default_cache_dir
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .fashion_mnist import FMNIST_CLASSES, find_data_dir, load_fashion_mnist
from .formats import load_cifar10c, load_imagenetc
from .idx import IDXError, read_idx, write_idx

__all__ = [
           "CORRUPTIONS",
           "FMNISTC",
           "FMNIST_CLASSES",
           "SEVERITIES",
           "IDXError",
           "corrupt",
           "default_cache_dir",
           "find_data_dir",
           "load_cifar10c",
           "load_fashion_mnist",
           "load_imagenetc",
           "read_idx",
           "write_idx",
]
