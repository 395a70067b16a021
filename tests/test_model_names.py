"""The model field: clear messages for every kind of bad name, and no directory oracle on a public deployment."""

from __future__ import annotations

import pytest

from engine.models import BUILTIN_MODELS, resolve_model_name
from engine.registry import InputError


def _msg(name, **kw) -> str:
    with pytest.raises(InputError) as e:
        resolve_model_name(name, builtins=BUILTIN_MODELS, allow_network=kw.get("net", False))
    return str(e.value)


def test_builtin_dir_and_hub_are_told_apart_locally(tmp_path, monkeypatch):
    monkeypatch.delenv("REDEX_PUBLIC", raising=False)
    assert resolve_model_name("smollm2", builtins=BUILTIN_MODELS, allow_network=False) == (
        "builtin",
        "smollm2",
    )
    assert resolve_model_name(str(tmp_path), builtins=BUILTIN_MODELS, allow_network=False)[0] == "dir"
    assert resolve_model_name("org/model", builtins=BUILTIN_MODELS, allow_network=True) == (
        "hub",
        "org/model",
    )
    assert "network access is off" in _msg("org/model")


@pytest.mark.parametrize(
    "name,match",
    [
        ("", "no model given"),
        ("x" * 5000, "5,000 characters"),
        ("../no-such-folder-here", "unknown model"),
        ("org/../model", "unknown model"),
        ("https://example.com/org/model", "unknown model"),
        ("org/model/extra", "unknown model"),
    ],
)
def test_bad_names_get_clear_messages(name, match, monkeypatch):
    monkeypatch.delenv("REDEX_PUBLIC", raising=False)
    assert match in _msg(name, net=True)


def test_public_deployment_gives_one_message_for_existing_and_missing_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEX_PUBLIC", "1")
    existing, missing = str(tmp_path), str(tmp_path / "missing")
    a, b = _msg(existing), _msg(missing)
    assert a.replace(existing, "X") == b.replace(missing, "X")
    assert "does not load models from the server's folders" in a
    assert resolve_model_name("minilm", builtins=BUILTIN_MODELS, allow_network=False) == ("builtin", "minilm")


def test_a_killed_conversion_leaves_no_folder_behind(tmp_path):
    from engine.models import _remove_stale_conversions

    dead = tmp_path / "smollm2.tmp999999999"  # no such process
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half written")
    _remove_stale_conversions(tmp_path)
    assert not dead.exists()
