"""The command line's error policy: which exceptions are the user's to fix, and the one line each becomes.

A user's mistake or the machine's state (a missing, unreadable or misplaced file, a bad corpus line, an
invalid setting, a failed download, a full disk) is reported as one line and exit status 2; anything
else is a bug and keeps its traceback. TensorFlow is never imported here: its errors are recognised
only once something else has loaded it.
"""
from __future__ import annotations

import errno
import re
import sys
from typing import Optional

from albert_ner.data.download import DownloadError

USER_ERRORS = (OSError, ValueError, DownloadError)
# TensorFlow's file-related errors, by class name (tf.errors.*): what the user's files or disk caused.
TF_USER_ERRORS = ("NotFoundError", "PermissionDeniedError", "DataLossError", "AlreadyExistsError")
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")
_TF_FUNCTION_PREFIX = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_TF_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


def _tf_op_error(exc: BaseException) -> bool:
    """A tf.errors.OpError, when TensorFlow is loaded (it is not imported for the check)."""
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    return tf_errors is not None and isinstance(exc, tf_errors.OpError)


def is_disk_full(exc: BaseException) -> bool:
    """A write failed for want of space (Python's OSError or TensorFlow's ResourceExhaustedError alike)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return (isinstance(exc, OSError) or _tf_op_error(exc)) and any(t in str(exc) for t in DISK_FULL_TEXTS)


def _os_error_text(exc: OSError) -> str:
    text = exc.strerror if exc.errno is not None and exc.strerror else str(exc)
    if exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        text = f"{target}: {text}"
    return text


def _tf_error_text(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return _TF_OP_SUFFIX.sub("", _TF_FUNCTION_PREFIX.sub("", text.strip()))


def user_error_message(exc: BaseException) -> Optional[str]:
    """The message for an error the user can fix, or None for one that is a bug (it keeps its traceback)."""
    if isinstance(exc, OSError):
        text = _os_error_text(exc)
    elif isinstance(exc, USER_ERRORS):
        text = str(exc)
    elif _tf_op_error(exc) and (type(exc).__name__ in TF_USER_ERRORS or is_disk_full(exc)):
        text = _tf_error_text(exc)
    else:
        return None
    return text or type(exc).__name__
