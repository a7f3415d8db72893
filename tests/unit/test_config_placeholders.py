"""A deployment that forgets to replace the example Secret's placeholders does not start: the
settings refuse any value still holding the placeholder marker, and say which one."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pydantic import ValidationError

from copygen.cli import main
from copygen.config import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "k8s/base/secret.example.yaml"
#: The key an earlier example shipped: valid base64 of 32 bytes.
OLD_EXAMPLE_KEY = "cmVwbGFjZS1tZS13aXRoLTMyLXJhbmRvbS1ieXRlcyE="


def _example() -> dict[str, str]:
    data = yaml.safe_load(EXAMPLE.read_text())["stringData"]
    return {key.removeprefix("COPYGEN_").lower(): value for key, value in data.items()}


@pytest.mark.parametrize("name", ["api_keys", "cache_encryption_key", "database_url"])
def test_each_placeholder_of_the_example_secret_is_refused(name: str) -> None:
    value = _example()[name]
    with pytest.raises(ValidationError, match=f"COPYGEN_{name.upper()}.*placeholder") as error:
        Settings(**{name: value})  # type: ignore[arg-type]
    assert value not in str(error.value)


def test_the_key_an_earlier_example_shipped_is_refused() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(cache_encryption_key=OLD_EXAMPLE_KEY)  # type: ignore[arg-type]


def test_copygen_serve_refuses_to_start_with_the_example_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve(_: Settings) -> None:
        raise AssertionError("copygen served with the example's placeholders")

    # Never a real server here, nor the app's imports: only the settings are under test.
    monkeypatch.setitem(sys.modules, "copygen.api.server", SimpleNamespace(serve=serve))
    for name, value in _example().items():
        monkeypatch.setenv(f"COPYGEN_{name.upper()}", value)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "placeholder" in capsys.readouterr().err


def test_real_values_are_accepted() -> None:
    settings = Settings(
        api_keys="web-app:" + os.urandom(16).hex(),  # type: ignore[arg-type]
        cache_encryption_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        database_url="postgresql://copygen:s3cret@db.internal:5432/copygen",  # type: ignore[arg-type]
    )
    assert settings.api_keys is not None
