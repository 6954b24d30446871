# albert-ner training image for SageMaker (BYOC): the same entry point as script mode.
#   docker build -t albert-ner .        (or sagemaker/build_and_push.sh, which also pushes to ECR)
# SageMaker runs `train` (the sagemaker-training toolkit), which runs $SAGEMAKER_PROGRAM from
# /opt/ml/code with the job's hyperparameters as --key value arguments.
FROM tensorflow/tensorflow:2.15.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gcc for sagemaker-training's C extension; 4.9.0 is the newest toolkit whose protobuf pin (<=3.20.3)
# fits TensorFlow 2.15 (5.x needs protobuf>=5.28). build-essential is left unpinned: its version is
# the base image's Ubuntu release's, and pinning it would break with every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN pip install "sagemaker-training==4.9.0"

WORKDIR /opt/albert-ner
COPY setup.cfg pyproject.toml README.md ./
COPY albert_ner ./albert_ner
COPY crf ./crf
COPY pretrained ./pretrained
RUN pip install . && python -c "import albert_ner, crf, pretrained, tensorflow_addons"

COPY sagemaker/train.py /opt/ml/code/train.py
ENV SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code \
    SAGEMAKER_PROGRAM=train.py
WORKDIR /opt/ml/code
