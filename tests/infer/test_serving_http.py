"""Request bodies, Accept and the 4xx answers of the serving handler (infer/serving_http.py)."""
import json

import pytest

from albert_ner.infer.serving_http import RequestError, parse_request, render, response_type


@pytest.mark.parametrize("body,content_type,texts", [
    ({"instances": ["张三", {"text": "北京", "id": 7}]}, "application/json", ["张三", "北京"]),
    ({"texts": []}, "application/json; charset=utf-8", []),
    (["a", "b"], None, ["a", "b"]),  # the container's default content type is application/json
    ({"text": "张三"}, "Application/JSON", ["张三"]),
    ("张三", "application/json", ["张三"]),
    (b'"a"\r\n\n  \n{"text": "b"}', "application/jsonlines", ["a", "b"]),
    (b'"a"\n', "application/x-jsonlines", ["a"]),
    ("line one\r\n\nline\u2028three\n".encode(), "text/plain", ["line one", "", "line\u2028three"]),
    ("第一行\n第二行".encode("gb18030"), "text/plain; charset=gb18030", ["第一行", "第二行"]),
    (b"\xef\xbb\xbf" + '{"instances": ["x"]}'.encode(), "application/json", ["x"]),
])
def test_request_bodies(body, content_type, texts):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    assert parse_request(raw, content_type) == texts


@pytest.mark.parametrize("body,content_type,status,message", [
    (b"", "application/json", 400, "request body: not valid JSON"),
    (b"[1]", "application/json", 400, "item 0: expected a string or {\"text\": \"...\"}, got a number"),
    (b"true", "application/json", 400, "expected {\"instances\": [text, ...]}"),
    (b'{"instances": {"a": 1}}', "application/json", 400, '"instances" must be a list of texts, got an object'),
    (b'{"inputs": {"token_ids": []}}', "application/json", 400, 'no "instances", "texts" or "text" field (keys: inputs)'),
    (b'"a"\n[1]\n', "application/jsonlines", 400, "line 2: expected a string"),
    (b"\xc3\x28", "application/json", 400, "the body is not valid utf-8 (byte 0"),
    (b"x", "text/csv", 415, "Content-Type 'text/csv' is not supported"),
    (b"x", "", 400, "request body: not valid JSON"),
    (b"x", "text/plain; charset=klingon", 415, "charset 'klingon' is not known"),
])
def test_bad_requests_name_what_is_wrong(body, content_type, status, message):
    with pytest.raises(RequestError) as info:
        parse_request(body, content_type)
    assert info.value.status == status and info.value.message.startswith(message), info.value.message
    answer = json.loads(info.value.body())
    assert answer == {"error": info.value.message, "status": status}
    assert info.value.status_line.startswith(str(status))


@pytest.mark.parametrize("accept,media", [
    (None, "application/json"), ("", "application/json"), ("*/*", "application/json"),
    ("application/jsonlines", "application/jsonlines"), ("application/x-jsonlines", "application/x-jsonlines"),
    ("text/html, application/jsonlines;q=0.9, application/json;q=0.5", "application/jsonlines"),
    ("application/json;q=0.1, application/jsonl", "application/jsonl"),
    ("application/*;q=0.2, text/html", "application/json"),
])
def test_accept_chooses_the_answer_format(accept, media):
    assert response_type(accept) == media


@pytest.mark.parametrize("accept", ["text/csv", "application/json;q=0, text/plain", "image/png, text/*"])
def test_unacceptable_accept_is_406(accept):
    with pytest.raises(RequestError) as info:
        response_type(accept)
    assert info.value.status == 406 and info.value.status_line == "406 Not Acceptable"


def test_render_json_and_json_lines():
    records = [{"text": "张三", "entities": []}, {"text": "", "entities": []}]
    assert json.loads(render(records, "application/json")) == records
    lines = render(records, "application/jsonlines").decode("utf-8")
    assert lines == '{"text": "张三", "entities": []}\n{"text": "", "entities": []}\n'
    assert render([], "application/jsonlines") == b"" and render([], "application/json") == b"[]"
