# albert-ner training image for SageMaker (BYOC): the same entry point as script mode.
#   docker build -t albert-ner .        (or sagemaker/build_and_push.sh, which also pushes to ECR)
# SageMaker starts the image as `docker run IMAGE train`: PID 1 is sagemaker/signal_relay.py (ENTRYPOINT), which
# runs `train` (the sagemaker-training toolkit; it runs $SAGEMAKER_PROGRAM from /opt/ml/code with the job's
# hyperparameters as --key value arguments) and passes SageMaker's SIGTERM (spot interruption, stop, max run) on
# to the trainer below the toolkit, which forwards none: the trainer writes a checkpoint before the job ends.
FROM tensorflow/tensorflow:2.15.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# sagemaker-training builds a C extension (gethostname.c includes Python.h): it needs gcc and the headers of
# the image's own Python. The base image runs Python 3.11 from Ubuntu 22.04's python3.11 package and ships
# no headers, so python${PYTHON_VERSION}-dev comes from the same archive; the RUN stops with a message if
# python3 is another version or Python.h is still missing. 4.9.0 is the newest toolkit whose protobuf
# pin (<=3.20.3) fits TensorFlow 2.15 (5.x needs protobuf>=5.28). The apt packages are left unpinned:
# their versions are the base image's Ubuntu release's, and a pin would break with every security update.
ARG PYTHON_VERSION=3.11
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential "python${PYTHON_VERSION}-dev" \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -c "import sys; v = '%d.%d' % sys.version_info[:2]; sys.exit(v != '${PYTHON_VERSION}' and \
'python3 is ' + v + ', not ${PYTHON_VERSION}: build with --build-arg PYTHON_VERSION=' + v)" \
    && python3 -c "import os, sys, sysconfig; h = os.path.join(sysconfig.get_paths()['include'], 'Python.h'); \
sys.exit(not os.path.isfile(h) and h + ' is missing')"
RUN python3 -m pip install "sagemaker-training==4.9.0"

WORKDIR /opt/albert-ner
COPY setup.cfg pyproject.toml README.md ./
COPY albert_ner ./albert_ner
COPY crf ./crf
COPY pretrained ./pretrained
RUN pip install . && python -c "import albert_ner, crf, pretrained, tensorflow_addons"

COPY sagemaker/signal_relay.py /opt/albert-ner/signal_relay.py
COPY sagemaker/train.py /opt/ml/code/train.py
ENV SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code \
    SAGEMAKER_PROGRAM=train.py
WORKDIR /opt/ml/code
ENTRYPOINT ["python3", "/opt/albert-ner/signal_relay.py"]
CMD ["train"]
