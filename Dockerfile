# The MIDOG 2025 Track 2 container: mitobench classifies every page of every TIFF stack in
# /input/images/stacked-histopathology-roi-cropouts/ and writes
# /output/multiple-mitotic-figure-classification.json with the shipped model, amibr-lite0
# (docs/model-card.md), run by ONNX Runtime:
#
#   docker build -t mitobench-midog .
#   docker run --rm --network none \
#       -v "$PWD/test/input:/input:ro" -v "$PWD/test/output:/output" mitobench-midog
#
# Your own model instead (`mitobench export RUN --out model.safetensors`): mount it and name it,
#   docker run ... -v "$PWD/model.safetensors:/opt/ml/model/model.safetensors:ro" mitobench-midog \
#       --model /opt/ml/model
#
# CUDA-capable base (PyTorch with CUDA 12.4); on a machine without a GPU it runs on the CPU.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

COPY pyproject.toml README.md /opt/mitobench/
COPY src /opt/mitobench/src
# the shipped model is package data: the challenge runs without network
RUN pip install "/opt/mitobench[onnx]"

RUN groupadd -r user && useradd -m --no-log-init -r -g user user
USER user
WORKDIR /home/user

ENTRYPOINT ["mitobench", "midog", "--input", "/input", "--output", "/output"]
