"""Helpers for running an exported archive as the SageMaker TensorFlow Serving container runs it.

`fake_serving(saved_model_dir)` is TensorFlow Serving's REST predict API backed by the SavedModel;
`emulated_container(root, port, python)` runs container_emulator.py on an unpacked archive with an
interpreter that sees no site-packages; `invoke` posts one request to it.
"""
import contextlib
import glob
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import tensorflow as tf

from albert_ner.infer.serving import SIGNATURE

EMULATOR = Path(__file__).with_name("container_emulator.py")


def python310():
    """A Python 3.10 interpreter (the container's version), or None."""
    found = shutil.which("python3.10")
    candidates = ([found] if found else []) + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    for path in candidates:
        try:
            out = subprocess.run([path, "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 10)":
            return path
    return None


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """POST /v1/models/model:predict in TensorFlow Serving's columnar REST format."""

    serve = None
    calls = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/models/model:predict" or body.get("signature_name") != SIGNATURE:
            return self._answer(404, {"error": f"no such model/signature: {self.path} {body.get('signature_name')}"})
        try:
            out = self.serve(**{k: tf.constant(v, tf.int32) for k, v in body["inputs"].items()})
        except Exception as exc:  # TF Serving answers 400 with the error
            return self._answer(400, {"error": str(exc)[:500]})
        type(self).calls.append({k: len(v) for k, v in body["inputs"].items()})
        self._answer(200, {"outputs": {k: v.numpy().tolist() for k, v in out.items()}})

    def _answer(self, status, obj):
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def fake_serving(saved_model_dir):
    """Yields the port of a TF-Serving-like REST endpoint serving model "model" from saved_model_dir."""
    handler = type("FakeServing", (_FakeServing,), {"calls": []})
    handler.serve = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def unpack_like_sagemaker(archive, dest):
    """Extract model.tar.gz into dest/opt/ml/model (where the container finds it); returns that folder."""
    root = Path(dest) / "opt" / "ml" / "model"
    root.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


@contextlib.contextmanager
def emulated_container(root, rest_port, python=sys.executable):
    """Run the archive's handler under `python -I -S`; yields (base URL, python version string)."""
    proc = subprocess.Popen([python, "-I", "-S", str(EMULATOR), str(root), str(rest_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(root.parent),
                            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                                 "LANG": "C.UTF-8"})
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            proc.kill()
            raise AssertionError(f"the container did not start: {line}{proc.stderr.read()[-4000:]}")
        _, port, model_name, version = line.split()
        assert model_name == "model", f"the container would serve the SavedModel as {model_name!r}"
        yield f"http://127.0.0.1:{port}", version
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def invoke(base, body, content_type="application/json", accept=None, path="/invocations"):
    """POST a request; returns (status, content type, body bytes)."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def get_json(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as resp:
        return json.loads(resp.read())
