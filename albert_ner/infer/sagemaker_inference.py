"""SageMaker TensorFlow Serving handler for an `albert-ner export` (copied to code/inference.py).

The container runs TensorFlow Serving on the SavedModel in 1/ and calls `handler` for every
request; this module featurizes and windows the texts, posts the window batches to Serving's
REST API, merges the windows and returns entities. The albert_ner modules it needs are copied
beside it into code/lib (SageMaker puts that folder on the import path; it is added here too).
Request: {"instances": ["张三在北京工作。", ...]} (or text/plain, one text per line).
Response: [{"text": ..., "tags": [...], "entities": [{"type", "start", "end", "text", "score"}]}, ...]
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

from albert_ner.infer.serving import ServingPipeline, parse_request, rest_runner  # noqa: E402

_PIPELINES = {}


def handler(data, context):
    """SageMaker TFS entry point: (request body stream, context) -> (response body, content type)."""
    pipeline = _PIPELINES.get(context.rest_uri)
    if pipeline is None:
        pipeline = ServingPipeline.from_dir(os.path.join(HERE, "model"), rest_runner(context.rest_uri))
        _PIPELINES[context.rest_uri] = pipeline
    body = data.read() if hasattr(data, "read") else data
    texts = parse_request(body, getattr(context, "request_content_type", None))
    return json.dumps(pipeline.tag(texts), ensure_ascii=False), "application/json"
