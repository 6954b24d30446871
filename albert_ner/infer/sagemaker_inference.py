"""SageMaker TensorFlow Serving handler for an `albert-ner export` (copied to code/inference.py).

The container (tensorflow-inference 2.14: Python 3.10, no numpy, no TensorFlow in its Python) runs
TensorFlow Serving on the SavedModel in 1/ and calls `handler` for every request, with code/ and
code/lib/ on the import path; requirements.txt would be ignored beside lib/, and none is needed:
lib/ holds the albert_ner modules the handler uses (standard library only) and, for a model with word
features, jieba, so an endpoint without internet access starts as well. The featurizer tables are
read and checked when the container starts (a broken export fails the start, not every request).

Request and response formats: infer/serving_http.py. Bad input is answered with HTTP 400/406/415 and
{"error": message, "status": code}.
"""
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

from albert_ner.infer.serving import ServingPipeline, rest_runner  # noqa: E402
from albert_ner.infer.serving_features import ServingFeatures  # noqa: E402
from albert_ner.infer.serving_http import JSON, RequestError, parse_request, render, response_type  # noqa: E402

log = logging.getLogger("albert_ner.serving")
BATCH_SIZE = 64  # windows per TensorFlow Serving call
FEATURES = ServingFeatures.from_dir(os.path.join(HERE, "model"))
FEATURES.load_segmenter()
_PIPELINES = {}


def _pipeline(rest_uri):
    pipeline = _PIPELINES.get(rest_uri)
    if pipeline is None:
        pipeline = _PIPELINES[rest_uri] = ServingPipeline(FEATURES, rest_runner(rest_uri), BATCH_SIZE)
    return pipeline


def _container_response(depth=6):
    """The response object of the request being handled, if a calling frame holds one.

    The container's service sets HTTP 200 before it calls `handler`, answers any exception with 500
    and gives the handler no argument to choose the status with; its request method keeps the
    response (a falcon Response) in the local variable `res`. Only an object of the falcon package is
    taken, so nothing else is touched."""
    frame = sys._getframe(2)
    while frame is not None and depth > 0:
        candidate = frame.f_locals.get("res")
        if candidate is not None and type(candidate).__module__.split(".")[0] == "falcon" \
                and hasattr(candidate, "status"):
            return candidate
        frame, depth = frame.f_back, depth - 1
    return None


def _refuse(exc):
    """Answer a bad request with its 4xx status and message; where the container's response object cannot be
    found (another serving stack), raise, and the container answers 500 with the message."""
    log.info("refused a request: HTTP %d: %s", exc.status, exc.message)
    response = _container_response()
    if response is None:
        raise exc
    response.status = exc.status_line
    return exc.body(), JSON


def handler(data, context):
    """SageMaker TFS entry point: (request body stream, context) -> (response body, content type)."""
    try:
        media = response_type(getattr(context, "accept_header", None))
        body = data.read() if hasattr(data, "read") else data
        if isinstance(body, str):
            body = body.encode("utf-8")
        texts = parse_request(body or b"", getattr(context, "request_content_type", None))
    except RequestError as exc:
        return _refuse(exc)
    return render(_pipeline(context.rest_uri).tag(texts), media), media
