"""SageMaker entry point (script mode and the custom container alike): `python train.py --key value ...`.

Everything happens in albert_ner.sagemaker_env; this file only makes the package importable when
SageMaker unpacks the source directory (script mode) and hands over the arguments.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The packages sit beside this file in a script-mode source bundle, one level up in the repository.
for root in (os.path.dirname(HERE), HERE):
    if os.path.isdir(os.path.join(root, "albert_ner")):
        sys.path.insert(0, root)

from albert_ner.sagemaker_env import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
