"""Writers of training pairs for Caffe: HDF5 shards (HDF5Data) and LMDB (Data)."""
from .datum import decode_datum, encode_datum
from .hdf5 import HDF5_MAX_ELEMENTS, read_hdf5_shard, write_hdf5_shard

__all__ = ["encode_datum", "decode_datum", "write_hdf5_shard", "read_hdf5_shard", "HDF5_MAX_ELEMENTS"]
