"""Properties of the node configuration: values round trip from TOML and from the
environment, unknown keys and values of the wrong type are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tongban.server.config import _SCHEMA, ConfigError, NodeConfig, load_config

REQUIRED = {
    ("node", "id"): "420700",
    ("tls", "cert"): "/etc/tongban/tls/node.pem",
    ("tls", "key"): "/etc/tongban/tls/node-key.pem",
    ("tls", "root"): "/etc/tongban/root.pem",
    ("federation", "directory"): "/etc/tongban/directory.json",
    ("keys", "dir"): "/etc/tongban/keys",
}
# Where each key lands in NodeConfig (limits and delivery land in their own values).
FIELD = {
    ("node", "id"): "node_id",
    ("tls", "cert"): "tls_cert",
    ("tls", "key"): "tls_key",
    ("tls", "root"): "root_cert",
    ("federation", "directory"): "directory",
    ("federation", "refresh_seconds"): "directory_refresh_seconds",
    ("keys", "dir"): "keys_dir",
    ("matters", "catalog"): "matters",
    ("seals", "dir"): "seals_dir",
}
# Values a key takes that load_config checks beyond their type.
RANGES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("limits", "segment_size"): st.integers(1, 1 << 20),
    ("limits", "max_message_bytes"): st.integers((1 << 20) + (64 << 10), 1 << 40),
    ("delivery", "batch_size"): st.integers(1, 256),
    ("delivery", "workers"): st.integers(1, 1000),
    ("limits", "max_files"): st.integers(1, 1 << 20),
    ("limits", "max_form_bytes"): st.integers(1, 4177920),
    ("limits", "max_anonymous_verify_bytes"): st.integers(1, 1 << 40),
    ("web", "site_url"): st.builds(
        lambda scheme, host: f"{scheme}://{host}",
        st.sampled_from(["https", "http"]),
        st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9]{0,8})?", fullmatch=True),
    ),
    ("web", "max_upload_bytes"): st.integers(1, 1 << 40),
    ("web", "requests_per_minute"): st.integers(1, 1 << 30),
    # Admission: every count at least 1, a caller's share never above its lane's.
    ("admission", "idle_timeout_seconds"): st.floats(0.001, 1e6, allow_nan=False),
    ("node", "health_probe_seconds"): st.floats(0.001, 1e6, allow_nan=False),
    ("storage", "longest_transfer_seconds"): st.floats(0.001, 1e6, allow_nan=False),
    ("node", "clock_skew_tolerance_seconds"): st.floats(0.001, 10.0, allow_nan=False),
    ("node", "clock_skew_refuse_seconds"): st.floats(10.0, 1e6, allow_nan=False),
    **{
        # The smallest lane's default is 8 calls.
        ("admission", key): st.integers(1, 8)
        if key.endswith("_per_caller")
        else st.integers(1000, 1 << 20)
        for key in _SCHEMA["admission"]
        if key != "idle_timeout_seconds"
    },
}
KEYS = [(section, key) for section, keys in _SCHEMA.items() for key in keys]
plain_text = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=20)
absolute_paths = st.lists(
    st.text("abcxyz-_.0123456789案件", min_size=1, max_size=8).filter(
        lambda s: s not in {".", ".."}
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))


def values_for(section: str, key: str) -> st.SearchStrategy[Any]:
    if (section, key) in RANGES:
        return RANGES[section, key]
    kind = _SCHEMA[section][key]
    if kind is Path:
        return absolute_paths
    if kind is int:
        return st.integers(0, 2**62)
    if kind is float:
        return st.floats(0, 1e12, allow_nan=False)
    if (section, key) == ("storage", "database"):
        return st.just("sqlite:////var/lib/tongban/metadata.db")
    if (section, key) == ("storage", "objects"):
        return st.just("/var/lib/tongban/blobs")
    return plain_text


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


def render(values: dict[tuple[str, str], Any]) -> str:
    sections: dict[str, list[str]] = {}
    for (section, key), value in values.items():
        sections.setdefault(section, []).append(f"{key} = {toml_value(value)}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


def configured(config: NodeConfig, section: str, key: str) -> Any:
    if section == "limits":
        return getattr(config.limits, key)
    if section == "delivery":
        return getattr(config.delivery, key)
    if section == "admission":
        return getattr(config.admission, key)
    if section == "web":
        value = getattr(config.web, key)
        return str(value) if isinstance(value, Path) else value
    value = getattr(config, FIELD.get((section, key), key))
    return str(value) if isinstance(value, Path) else value


@st.composite
def configs(draw: st.DrawFn) -> dict[tuple[str, str], Any]:
    chosen = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    values = dict(REQUIRED)
    for section, key in chosen:
        values[section, key] = draw(values_for(section, key))
    # The site's certificate and key go together; with a site address, new seals carry it
    # and a separate verification_url is refused.
    for have, other in ((("web", "tls_cert"), ("web", "tls_key")),):
        if (have in values) != (other in values):
            missing = other if have in values else have
            values[missing] = draw(absolute_paths)
    if ("web", "site_url") in values:
        values.pop(("seals", "verification_url"), None)
    return values


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(values=configs())
def test_values_round_trip_from_toml(tmp_path: Path, values: dict[tuple[str, str], Any]) -> None:
    path = tmp_path / "node.toml"
    path.write_text(render(values), encoding="utf-8")
    config = load_config(path, environ={})
    for (section, key), value in values.items():
        assert configured(config, section, key) == value, (section, key)


@SETTINGS
@given(values=configs())
def test_values_round_trip_from_the_environment(
    tmp_path: Path, values: dict[tuple[str, str], Any]
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(render(REQUIRED), encoding="utf-8")
    environ = {
        f"TONGBAN_{section.upper()}_{key.upper()}": str(value)
        for (section, key), value in values.items()
        if "\x00" not in str(value)
    }
    config = load_config(path, environ=environ)
    for (section, key), value in values.items():
        if f"TONGBAN_{section.upper()}_{key.upper()}" in environ:
            assert configured(config, section, key) == value, (section, key)


identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@SETTINGS
@given(section=st.sampled_from(sorted(_SCHEMA)), key=identifiers)
def test_unknown_keys_are_refused_everywhere(tmp_path: Path, section: str, key: str) -> None:
    if key in _SCHEMA[section]:
        key += "_unknown"
    path = tmp_path / "node.toml"
    path.write_text(render({**REQUIRED, (section, key): 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"unknown config key \\[{section}\\] {key}"):
        load_config(path, environ={})
    path.write_text(render(REQUIRED), encoding="utf-8")
    name = f"TONGBAN_{section.upper()}_{key.upper()}"
    with pytest.raises(ConfigError, match=f"^unknown environment variable {name}: "):
        load_config(path, environ={name: "1"})
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(path, environ={}, overrides={section: {key: 1}})


@SETTINGS
@given(section=identifiers.filter(lambda s: s not in _SCHEMA))
def test_unknown_sections_are_refused(tmp_path: Path, section: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(render({**REQUIRED, (section, "x"): 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"unknown config section \\[{section}\\]"):
        load_config(path, environ={})


WRONG: dict[type, st.SearchStrategy[Any]] = {
    int: st.sampled_from([1.5, 2.0e3, True, "seven", [1], {"a": 1}]),
    float: st.sampled_from([True, "fast", [1.0], {"a": 1.0}]),
    str: st.sampled_from([7, 1.5, False, ["x"], {"a": "b"}]),
    Path: st.sampled_from([7, 1.5, False, ["x"], {"a": "b"}]),
}


@SETTINGS
@given(data=st.data(), where=st.sampled_from(KEYS))
def test_a_value_of_the_wrong_type_is_refused(
    tmp_path: Path, data: st.DataObject, where: tuple[str, str]
) -> None:
    section, key = where
    value = data.draw(WRONG[_SCHEMA[section][key]], label="value")
    text = render({**REQUIRED, where: "placeholder"})
    text = text.replace(f'{key} = "placeholder"', f"{key} = {_toml_any(value)}")
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"\\[{section}\\] {key}: .* is not a valid"):
        load_config(path, environ={})


def _toml_any(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_any(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_any(v)}" for k, v in value.items()) + "}"
    return toml_value(value)
