"""Runs an unpacked model archive the way the SageMaker TensorFlow Serving container runs its handler.

Usage: python -I -S container_emulator.py MODEL_ROOT TFS_REST_PORT   (MODEL_ROOT plays /opt/ml/model)

What it reproduces of the container (tensorflow-inference 2.14; its serve.py, tfs_utils.py and
python_service.py): the SavedModel bundles are the folders N/ holding saved_model.pb anywhere under
MODEL_ROOT, and the default model's name is the base name of the first bundle's parent; the handler
is MODEL_ROOT/code/inference.py, imported under the name "inference" with code/ and code/lib/ on the
import path (requirements.txt is not installed when lib/ exists); `handler` is preferred to
input_handler/output_handler; each POST /invocations gets (request body stream, Context) with the
container's Context fields, Content-Type and Accept defaulting to application/json; the service
sets status 200, then the handler's (body, content type) are the answer, and any exception is
answered 500 {"error": str(exception)}. The response object is of a class from a "falcon" module,
as the container's is. POST /invocations-plain does the same with a response object of another
kind (another serving stack). GET /ping answers 200; GET /modules lists the modules loaded from
anywhere but the standard library and MODEL_ROOT/code.

It must run with no site-packages (-I -S): the container's Python has neither numpy nor TensorFlow,
so the handler may use only the standard library and what the archive carries.
"""
import collections
import importlib.util
import io
import json
import os
import re
import sys
import sysconfig
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Context = collections.namedtuple("Context", "model_name, model_version, method, rest_uri, grpc_port, channel, "
                                            "custom_attributes, request_content_type, accept_header, content_length")
FalconResponse = type("Response", (), {"__module__": "falcon.response"})
OtherResponse = type("Response", (), {"__module__": "some_server.response"})


def find_models(root):
    """Folders holding N/saved_model.pb (N digits), as the container finds them."""
    models = []
    for folder, _, files in sorted(os.walk(root)):
        if "saved_model.pb" in files and re.fullmatch(r"[0-9]+", os.path.basename(folder)):
            model = os.path.dirname(folder)
            if model not in models:
                models.append(model)
    return models


def load_handler(code):
    """code/inference.py as the container imports it: `handler`, or input_handler + output_handler."""
    sys.path[:0] = [code] + ([os.path.join(code, "lib")] if os.path.isdir(os.path.join(code, "lib")) else [])
    for name in ("numpy", "tensorflow", "jieba"):
        if name != "jieba" or not os.path.isdir(os.path.join(code, "lib", "jieba")):
            assert importlib.util.find_spec(name) is None, f"{name} is importable: not the container's Python"
    spec = importlib.util.spec_from_file_location("inference", os.path.join(code, "inference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "handler"):
        return module.handler
    raise SystemExit("inference.py has no handler (this archive's handler is expected to define one)")


def foreign_modules(code):
    """Loaded modules that come from neither the standard library nor the archive's code/ folder."""
    stdlib = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
    out = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name != "__main__" and path and not any(os.path.abspath(path).startswith(os.path.abspath(p) + os.sep) for p in stdlib + [code]):
            out.append(f"{name}: {path}")
    return sorted(out)


def main(root, rest_port):
    models = find_models(root)
    if not models:
        raise SystemExit(f"{root}: no SavedModel bundles found (N/saved_model.pb)")
    code = os.path.join(root, "code")
    if not os.path.isfile(os.path.join(code, "inference.py")):
        raise SystemExit(f"{code}/inference.py: missing, the container would serve the SavedModel without it")
    model_name = os.path.basename(models[0])
    rest_uri = f"http://127.0.0.1:{rest_port}/v1/models/{model_name}:predict"
    handler = load_handler(code)

    class Service(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/ping":
                self._answer("200 OK", b"", "text/plain")
            elif self.path == "/modules":
                self._answer("200 OK", json.dumps(foreign_modules(code)).encode(), "application/json")
            else:
                self._answer("404 Not Found", b"", "text/plain")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            res = (FalconResponse if self.path == "/invocations" else OtherResponse)()
            context = Context(None, None, None, rest_uri, None, None, None,
                              self.headers.get("Content-Type") or "application/json",
                              self.headers.get("Accept") or "application/json", len(body))
            res.status = "200 OK"
            try:
                res.body, res.content_type = handler(io.BytesIO(body), context)
            except Exception as e:  # the container's answer to any handler exception
                res.status = "500 Internal Server Error"
                res.body, res.content_type = json.dumps({"error": str(e)}).encode("utf-8"), "application/json"
            payload = res.body if isinstance(res.body, bytes) else str(res.body).encode("utf-8")
            self._answer(res.status, payload, res.content_type)

        def _answer(self, status, payload, content_type):
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    print(f"READY {server.server_address[1]} {model_name} {sys.version_info[0]}.{sys.version_info[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
