from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from copygen.config import EMBEDDED_MODEL_ID, Settings


def test_defaults_serve_the_embedded_model_on_loopback() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.model == EMBEDDED_MODEL_ID
    assert settings.uses_embedded_model


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPYGEN_PORT", "9001")
    monkeypatch.setenv("COPYGEN_DTYPE", "float32")
    monkeypatch.setenv("COPYGEN_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("COPYGEN_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.port == 9001
    assert settings.dtype == "float32"
    assert settings.log_level == "debug"
    assert settings.cors_origin_list == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COPYGEN_PORT", "0"),
        ("COPYGEN_MAX_QUEUE", "-1"),
        ("COPYGEN_DTYPE", "int4"),
        ("COPYGEN_DEVICE", "tpu"),
        ("COPYGEN_REQUEST_TIMEOUT_S", "0"),
        ("COPYGEN_MODEL", "  "),
    ],
)
def test_nonsense_fails_fast(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_prefix_reuse_is_opt_in() -> None:
    assert Settings().prefix_cache is False


def test_a_backend_url_must_be_http_and_loses_its_trailing_slash() -> None:
    assert Settings(backend_url="http://vllm:8000/v1/").backend_url == "http://vllm:8000/v1"
    assert Settings(backend_url="  ").backend_url is None
    with pytest.raises(ValidationError):
        Settings(backend_url="vllm:8000")


def test_the_backend_key_may_come_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    assert Settings(backend_api_key=f"@{key_file}").backend_key() == "sk-from-file"
    assert Settings(backend_api_key="sk-inline").backend_key() == "sk-inline"
    assert Settings().backend_key() is None
