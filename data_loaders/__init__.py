"""Readers of the paper's datasets in their on-disk formats, encodings, and procedural tasks.

Everything works offline on the files a user downloads (see ``docs/data.md``);
time is in seconds unless a name says otherwise (``t`` of address events is in
microseconds, latency codes are in steps).

Batch interface (used by training)
    load_dataset(name, split, *, root, n_steps, dt, time_scale, rng, **options)
        -> SpikeDataset (n_inputs, n_classes, n_steps, name, labels, len, dense)
    stratified_subset(labels, size, rng) -> sorted indices
    iterate_batches(dataset, batch_size, rng, *, indices, drop_last, dtype)
        -> (x (batch, n_steps, n_inputs), y int64)
    DATASET_NAMES

Readers
    read_idx(path, *, expected_md5)                    IDX, raw or gzip
    load_fashion_mnist(split, root, *, verify_md5), fashion_mnist_root(root)
    read_nmnist(path), list_nmnist(root, split)        N-MNIST .bin
    read_aedat31(path, *, t_start, t_end, index)       AEDAT 3.1, streamed
    iter_aedat31(...), index_aedat31(path)
    read_gesture_labels(path), read_trial_list(path), list_gesture(root, split, *, classes)
    read_shd(path) -> SpikeFile                        SHD / SSC HDF5, lazy

Encoding and binning
    latency_time(x, ...), latency_encode(images, ...)  SpyTorch latency code
    bin_events(times_seconds, units, n_units, dt, n_steps, *, counts, dtype, out)
    scale_times(times_seconds, factor)                 time-scale augmentation
    shd_channel_jitter(units, rng, *, sd, n_units, merge)
    nmnist_index(x, y, p), dvs_index(x, y, p, *, downsample), dvs_n_inputs(downsample)

Procedural tasks
    yin_yang(n, seed), yin_yang_encode(features, ...), yin_yang_class(x, y)
    randman(n_samples, *, ..., seed, sample_rng)
    delayed_memory(n_samples, *, ..., delay, seed)

Errors
    DataFormatError (a ValueError), ChecksumError

Constants
    EVENT_DTYPE, PACKET_INDEX_DTYPE, IDX_TYPES, FMNIST_CLASSES, FMNIST_DEFAULT_ROOT,
    FMNIST_ENV_VAR, FMNIST_MD5, GESTURE_CLASSES, NMNIST_N_INPUTS, DVS_N_INPUTS,
    NMNIST_SENSOR, DVS_SENSOR, SHD_N_UNITS, YIN_YANG_SPLITS
"""

from .aedat import (
    GESTURE_CLASSES,
    PACKET_INDEX_DTYPE,
    index_aedat31,
    iter_aedat31,
    list_gesture,
    read_aedat31,
    read_gesture_labels,
    read_trial_list,
)
from .datasets import (
    DATASET_NAMES,
    SpikeDataset,
    iterate_batches,
    load_dataset,
    stratified_subset,
)
from .encoding import (
    DVS_N_INPUTS,
    DVS_SENSOR,
    NMNIST_N_INPUTS,
    NMNIST_SENSOR,
    bin_events,
    dvs_index,
    dvs_n_inputs,
    latency_encode,
    latency_time,
    nmnist_index,
    scale_times,
    shd_channel_jitter,
)
from .errors import ChecksumError, DataFormatError
from .fashion_mnist import (
    FMNIST_CLASSES,
    FMNIST_DEFAULT_ROOT,
    FMNIST_ENV_VAR,
    FMNIST_MD5,
    fashion_mnist_root,
    load_fashion_mnist,
)
from .idx import IDX_TYPES, read_idx
from .nmnist import EVENT_DTYPE, list_nmnist, read_nmnist
from .procedural import (
    YIN_YANG_SPLITS,
    delayed_memory,
    randman,
    yin_yang,
    yin_yang_class,
    yin_yang_encode,
)
from .shd import SHD_N_UNITS, SpikeFile, read_shd

__all__ = [
    "DATASET_NAMES",
    "DVS_N_INPUTS",
    "DVS_SENSOR",
    "EVENT_DTYPE",
    "FMNIST_CLASSES",
    "FMNIST_DEFAULT_ROOT",
    "FMNIST_ENV_VAR",
    "FMNIST_MD5",
    "GESTURE_CLASSES",
    "IDX_TYPES",
    "NMNIST_N_INPUTS",
    "NMNIST_SENSOR",
    "PACKET_INDEX_DTYPE",
    "SHD_N_UNITS",
    "YIN_YANG_SPLITS",
    "ChecksumError",
    "DataFormatError",
    "SpikeDataset",
    "SpikeFile",
    "bin_events",
    "delayed_memory",
    "dvs_index",
    "dvs_n_inputs",
    "fashion_mnist_root",
    "index_aedat31",
    "iter_aedat31",
    "iterate_batches",
    "latency_encode",
    "latency_time",
    "list_gesture",
    "list_nmnist",
    "load_dataset",
    "load_fashion_mnist",
    "nmnist_index",
    "randman",
    "read_aedat31",
    "read_gesture_labels",
    "read_idx",
    "read_nmnist",
    "read_shd",
    "read_trial_list",
    "scale_times",
    "shd_channel_jitter",
    "stratified_subset",
    "yin_yang",
    "yin_yang_class",
    "yin_yang_encode",
]
