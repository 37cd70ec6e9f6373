"""The official anthropic Python SDK against the gateway's POST /v1/messages, unchanged but for
base_url and api_key: plain and streamed messages, tools and a tool_result round trip, token
counting, and the error classes a caller catches.

Run by the runtime suites (tests/src/clients.rs) in workerd and in the Spin host, behind the
mock providers (tests/src/mock.rs): model "an" is an Anthropic model (the mock replays Anthropic's
recorded answers and streams), "oa" an OpenAI one (the gateway translates both ways).
"""
import anthropic
import pytest

import os

BASE = os.environ["GATEWAY_BASE_URL"]
KEY = os.environ["GATEWAY_KEY_MAIN"]

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def client(key=KEY):
    return anthropic.Anthropic(base_url=BASE, api_key=key, max_retries=0, timeout=30)


def ask(text):
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("model", ["an", "oa"])
def test_create(model):
    r = client().messages.create(model=model, max_tokens=256, system="Be brief.", messages=ask("Describe the picture"))
    assert r.type == "message" and r.role == "assistant"
    assert r.content[0].type == "text" and r.content[0].text
    assert r.stop_reason == "end_turn"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    if model == "an":
        # An Anthropic model's answer comes back as it came: its own model id and text.
        assert r.model == "claude-sonnet-4-20250514" and r.content[0].text == "Hi! My name is Claude."
    else:
        assert r.model == "oa"


@pytest.mark.parametrize("model", ["an", "oa"])
def test_stream(model):
    with client().messages.stream(model=model, max_tokens=256, messages=ask("Describe the picture")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_tool_use_and_tool_result_round_trip():
    c = client()
    messages = ask("What is the weather in Paris?")
    r = c.messages.create(model="oa", max_tokens=256, tools=[WEATHER], messages=messages)
    assert r.stop_reason == "tool_use"
    call = next(b for b in r.content if b.type == "tool_use")
    assert call.name == "get_weather" and "location" in call.input
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}]
    r = c.messages.create(model="oa", max_tokens=256, tools=[WEATHER], messages=messages)
    assert r.stop_reason == "end_turn" and r.content[0].text


@pytest.mark.parametrize("model", ["an", "oa"])
def test_streamed_tool_use(model):
    with client().messages.stream(model=model, max_tokens=256, tools=[WEATHER], messages=ask("Weather in Paris?")) as s:
        kinds = {event.type for event in s}
        final = s.get_final_message()
    assert "input_json" in kinds, kinds
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input.get("location")
    assert final.stop_reason == "tool_use"


def test_count_tokens():
    r = client().messages.count_tokens(model="oa", messages=ask("word " * 100))
    assert r.input_tokens >= 100


def test_authentication_error():
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(key="gwk_not_a_key").messages.create(model="oa", max_tokens=16, messages=ask("hi"))
    assert e.value.status_code == 401 and e.value.body["error"]["type"] == "authentication_error"


def test_not_found_error():
    with pytest.raises(anthropic.NotFoundError) as e:
        client().messages.create(model="claude-nonexistent", max_tokens=16, messages=ask("hi"))
    assert e.value.status_code == 404


def test_bad_request_error():
    with pytest.raises(anthropic.BadRequestError) as e:
        client().messages.create(model="oa", max_tokens=16, messages=[])
    assert e.value.status_code == 400 and "messages" in e.value.message
