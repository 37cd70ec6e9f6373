"""LangChain's standard integration tests for chat models (langchain-tests'
ChatModelIntegrationTests) against ChatOpenAI with base_url pointed at the gateway.

Run by the runtime suites (tests/src/clients.rs) in workerd and in the Spin host. The provider
behind the gateway is the tests' mock (tests/src/mock.rs), which answers as a model would:
calls of the offered tool with arguments its schema accepts, JSON for a requested schema,
usage in streams. Capabilities the gateway serves but the mock cannot fake (images, audio, PDF)
are declared off, so those tests are skipped by the suite itself.
"""
import os

from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests


class TestGatewayChatOpenAI(ChatModelIntegrationTests):
    @property
    def chat_model_class(self):
        return ChatOpenAI

    @property
    def chat_model_params(self):
        return {
            "model": "oa",
            "base_url": os.environ["GATEWAY_BASE_URL"] + "/v1",
            "api_key": os.environ["GATEWAY_KEY_MAIN"],
            "max_retries": 0,
            "timeout": 30,
            "stream_usage": True,
        }

    @property
    def model_override_value(self):
        # Another model of the e2e config, named as OpenAI names the model the mock answers as.
        return "gpt-4o"

    @property
    def has_tool_choice(self):
        return True

    @property
    def supports_json_mode(self):
        return True

    @property
    def supports_image_inputs(self):
        return False

    @property
    def returns_usage_metadata(self):
        return True
