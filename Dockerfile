# The MIDOG 2025 Track 2 container: mitobench classifies every page of every TIFF stack in
# /input/images/stacked-histopathology-roi-cropouts/ and writes
# /output/multiple-mitotic-figure-classification.json. Build it with an exported bundle:
#
#   mitobench export runs/MY-RUN --out model.safetensors
#   docker build -t mitobench-midog --build-arg MODEL=model.safetensors .
#   docker run --rm --gpus all --network none \
#       -v "$PWD/test/input:/input:ro" -v "$PWD/test/output:/output" mitobench-midog
#
# CUDA-capable base (PyTorch with CUDA 12.4); on a machine without a GPU it runs on the CPU.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ARG MODEL=model.safetensors
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

COPY pyproject.toml README.md /opt/mitobench/
COPY src /opt/mitobench/src
RUN pip install /opt/mitobench

# the model travels inside the image: the challenge runs without network
COPY ${MODEL} /opt/ml/model/model.safetensors

RUN groupadd -r user && useradd -m --no-log-init -r -g user user
USER user
WORKDIR /home/user

ENTRYPOINT ["mitobench", "midog", "--input", "/input", "--output", "/output", "--model", "/opt/ml/model"]
