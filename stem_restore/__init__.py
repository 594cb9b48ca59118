"""The contracts shared by every part of stem-restore, each stated once.

``normalize``
    The intensity normalisation of network inputs and targets (and its inverse).
``atomic``
    The atomic file writer: a temporary file in the target folder, renamed over it.
``figures``
    The PNG figure writer (through ``atomic``).
``network``
    The paper's network -- layer count, kernel, filters, blob names, receptive
    field (px), parameter and solver-history blob counts -- and the one prototxt
    reader (Caffe's own protobuf schema).
``rowalign``
    The scan-line shift estimator and row alignment (evaluate's scan measure and
    ``align_rows`` baseline, ``restore.py --align-rows``).
``snapshots``
    Caffe snapshots: whole or not, where a resumed stage reads its shards.

datagen, training (``prototxt/make_nets.py``), restoration (restore.py) and
evaluate import these contracts instead of restating them.  Importing this
package or any of its modules loads neither Caffe nor the simulator.
"""
