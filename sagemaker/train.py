"""SageMaker entry point (script mode and the custom container alike): `python train.py --key value ...`.

Everything happens in albert_ner.sagemaker_env; this file only makes the package importable when
SageMaker unpacks the source directory (script mode) and hands over the arguments.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, when the source dir is the whole project

from albert_ner.sagemaker_env import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
