"""The official openai Python SDK against the gateway, unchanged but for base_url and api_key.

Run by the runtime suites (tests/src/clients.rs) against the gateway in workerd and in the Spin
host, behind the mock providers (tests/src/mock.rs), which answer as a model would: tool calls
while tools are offered, JSON that satisfies a requested schema. The environment names the
gateway and the test keys (tests/fixtures/e2e.yaml).
"""
import asyncio
import json
import os
from typing import Literal

import openai
import pydantic
import pytest

BASE = os.environ["GATEWAY_BASE_URL"] + "/v1"
KEY = os.environ["GATEWAY_KEY_MAIN"]
MODEL = "oa"  # the e2e config's OpenAI model, served by the mock


def client(key=KEY, **kw):
    return openai.OpenAI(base_url=BASE, api_key=key, max_retries=0, timeout=30, **kw)


class GetWeatherArgs(pydantic.BaseModel):
    city: str
    country: str
    units: Literal["c", "f"]


class CityFacts(pydantic.BaseModel):
    name: str
    population: int
    coastal: bool
    landmarks: list[str]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


def test_create():
    r = client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Describe the picture"}])
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert "boardwalk" in r.choices[0].message.content
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_create_with_raw_response_shows_gateway_headers():
    raw = client().chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-gateway-model"] == MODEL
    assert raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content


def test_stream_with_usage():
    chunks = list(client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].total_tokens > 0
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_tool_call_and_tool_result_round_trip():
    c = client()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "location" in json.loads(call.function.arguments)
    messages += [r.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    r = c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content


# `beta.chat.completions.stream` is where apps written for openai 1.x call the helper; 2.x and
# later also have it at `chat.completions.stream`. Both paths, one behaviour.
@pytest.mark.parametrize("path", ["chat", "beta.chat"])
def test_streamed_tool_calls_parsed_by_the_stream_helper(path):
    c = client()
    completions = c.beta.chat.completions if path == "beta.chat" else c.chat.completions
    with completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Edinburgh?"}],
        tools=[openai.pydantic_function_tool(GetWeatherArgs)],
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "GetWeatherArgs"
    assert call.function.parsed_arguments == GetWeatherArgs(city="Edinburgh", country="UK", units="c")


def test_structured_output_parse():
    r = client().chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Facts about Edinburgh"}], response_format=CityFacts)
    facts = r.choices[0].message.parsed
    assert isinstance(facts, CityFacts) and facts.landmarks


def test_json_mode():
    r = client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Answer in JSON: capital of Scotland"}],
        response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_embeddings():
    texts = ["The food was delicious", "and the waiter was friendly"]
    # The SDK asks for base64 by default and decodes it to floats.
    r = client().embeddings.create(model="emb", input=texts)
    assert r.object == "list" and [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(isinstance(x, float) for x in d.embedding) for d in r.data)
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens == 9
    floats = client().embeddings.create(model="emb", input=texts, encoding_format="float", dimensions=4)
    assert [len(d.embedding) for d in floats.data] == [4, 4]
    raw = client().embeddings.with_raw_response.create(model="embed", input="hello")
    assert raw.headers["x-gateway-model"] == "emb" and raw.headers["x-gateway-attempts"] == "2"


def test_embeddings_with_a_chat_model_is_a_bad_request():
    with pytest.raises(openai.BadRequestError) as e:
        client().embeddings.create(model="an", input="hello")
    assert e.value.status_code == 400 and e.value.code == "model_not_embedding"
    assert "Anthropic has no embeddings API" in e.value.message


def test_models_list():
    ids = {m.id for m in client().models.list()}
    assert MODEL in ids and "auto" in ids


def test_router_picks_the_model_when_the_caller_does_not():
    raw = client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Why is this SQL query slow?"}])
    assert raw.headers["x-gateway-route"] == "code"
    assert raw.parse().choices[0].message.content


def test_async_client_concurrent_calls():
    async def run():
        async with openai.AsyncOpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=30) as c:
            return await asyncio.gather(*[
                c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"question {i}"}])
                for i in range(8)])
    results = asyncio.run(run())
    assert len(results) == 8 and all(r.choices[0].message.content for r in results)


def _error(exc, call):
    with pytest.raises(exc) as e:
        call()
    body = e.value.body if isinstance(e.value.body, dict) else {}
    assert body.get("message"), e.value.body
    return e.value


def test_authentication_error():
    err = _error(openai.AuthenticationError, lambda: client(key="gwk_e2e_not_a_key").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]))
    assert err.status_code == 401 and err.code == "invalid_api_key"


def test_bad_request_error():
    err = _error(openai.BadRequestError, lambda: client().chat.completions.create(model=MODEL, messages=[]))
    assert err.status_code == 400 and err.type == "invalid_request_error"


def test_not_found_error():
    err = _error(openai.NotFoundError, lambda: client().chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}]))
    assert err.status_code == 404 and err.code == "model_not_found"


def test_permission_denied_error():
    restricted = client(key=os.environ["GATEWAY_KEY_RESTRICTED"])
    err = _error(openai.PermissionDeniedError, lambda: restricted.chat.completions.create(
        model="an", messages=[{"role": "user", "content": "hi"}]))
    assert err.status_code == 403 and err.code


def test_rate_limit_error():
    limited = client(key=os.environ["GATEWAY_KEY_RPM1"])
    limited.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    err = _error(openai.RateLimitError, lambda: limited.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]))
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    assert int(err.response.headers["retry-after"]) >= 1
