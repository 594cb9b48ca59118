# GPU stem-restore: BVLC Caffe (CUDA, cuBLAS; cuDNN when the image has it) built by
# the project's own scripts/install.sh.  All logic lives in that script; this file
# only provides a CUDA toolchain and runs it.
#
#   docker build -t stem-restore .
#   docker run --gpus all -v "$PWD/runs:/opt/stem-restore/runs" stem-restore \
#       bash run_training.sh --schedule paper --gpu 0
#   docker run --gpus all -v /path/to/micrographs:/data stem-restore \
#       .venv/bin/python restore.py /data -o /data/restored --gpu 0 --figure

# Stage 1: fetch and checksum the pinned Caffe source with Debian's own apt
# configuration (install.sh --fetch-source), so no mirror is named here.
FROM debian:12 AS source
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates dpkg-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/ scripts/
RUN bash scripts/install.sh --fetch-source

# Stage 2: CUDA 12.6 (Pascal sm_60 through Hopper sm_90), Ubuntu 24.04 (Python 3.12,
# Boost.Python 1.83, protobuf 3.21).
FROM nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHON=python3.12
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3.12-venv python3.12-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/stem-restore
COPY . .
COPY --from=source /src/.caffe/downloads/ /opt/caffe-src/
RUN CAFFE_SRC=/opt/caffe-src/caffe_1.0.0+git20180821.99bd997.orig.tar.gz bash scripts/install.sh --cuda \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash", "run_training.sh", "--schedule", "paper", "--gpu", "0"]
