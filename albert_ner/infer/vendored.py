"""jieba, copied beside the serving handler (code/lib/jieba/) for models with word features, with its licence.

The TensorFlow Serving container installs nothing when code/lib exists (and an endpoint without
internet access could not), so the handler's one third-party dependency travels with the export:
jieba is pure Python; its segmentation needs the package modules, dict.txt and the HMM tables of
finalseg/ and posseg/ (the analyse/, lac_small/ and Jython pickle files are left out). jieba is MIT
licensed; its licence text goes with the copy.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import List

JIEBA_FILES = ("__init__.py", "_compat.py", "dict.txt",
               "finalseg/__init__.py", "finalseg/prob_emit.py", "finalseg/prob_start.py", "finalseg/prob_trans.py",
               "posseg/__init__.py", "posseg/char_state_tab.py", "posseg/prob_emit.py", "posseg/prob_start.py",
               "posseg/prob_trans.py", "posseg/viterbi.py")
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENCE")
JIEBA_LICENSE = """\
The MIT License (MIT)

Copyright (c) 2013 Sun Junyi

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def jieba_source() -> Path:
    """The folder of the installed jieba package (a dependency of albert-ner)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("jieba is not installed: the export of a model with word features ships it "
                                "beside the handler (pip install jieba)")
    return Path(list(spec.submodule_search_locations)[0])


def copy_jieba(dest_lib: str | Path) -> List[Path]:
    """Copy jieba's segmentation files and its licence into dest_lib/jieba/; returns the files written."""
    source = jieba_source()
    dest = Path(dest_lib) / "jieba"
    written = []
    for rel in JIEBA_FILES:
        if not (source / rel).is_file():
            raise FileNotFoundError(f"{source / rel}: missing from the installed jieba (reinstall jieba>=0.42)")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest / rel)
        written.append(dest / rel)
    shipped = next((source / n for n in LICENSE_NAMES if (source / n).is_file()), None)
    license_path = dest / "LICENSE"
    if shipped is not None:
        shutil.copyfile(shipped, license_path)
    else:  # the sdist-built package carries no licence file; jieba's own text
        license_path.write_text(JIEBA_LICENSE, encoding="utf-8")
    written.append(license_path)
    return written
