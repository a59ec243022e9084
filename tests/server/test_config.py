"""Node configuration: typed, unknown keys refused, environment overrides, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongban.server.config import ConfigError, load_config

MINIMAL = """
[node]
id = "420700"
[tls]
cert = "tls/node.pem"
key = "tls/node-key.pem"
root = "root.pem"
[federation]
directory = "directory.json"
[keys]
dir = "keys"
"""


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "node.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_are_embedded_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL), environ={})
    assert cfg.node_id == "420700"
    assert cfg.tls_cert == tmp_path / "tls" / "node.pem"
    assert cfg.database == f"sqlite:///{tmp_path / 'var' / 'metadata.db'}"
    assert cfg.objects == str(tmp_path / "var" / "blobs")
    assert cfg.limits.max_message_bytes == 8 << 20
    assert (
        cfg.delivery.backoff(1) == 0.5
        and cfg.delivery.backoff(3) == 2.0
        and cfg.delivery.backoff(99) == 60.0
    )


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, MINIMAL),
        environ={
            "TONGBAN_STORAGE_DATABASE": "postgresql://relay@db/tongban",
            "TONGBAN_LIMITS_MAX_FILES": "7",
            "TONGBAN_NODE_LISTEN": "0.0.0.0:6000",
            "UNRELATED": "x",
        },
    )
    assert cfg.database == "postgresql://relay@db/tongban"
    assert cfg.limits.max_files == 7
    assert cfg.listen == "0.0.0.0:6000"


@pytest.mark.parametrize(
    ("extra", "environ", "message"),
    [
        (
            "[nodes]\nid = 1\n",
            {},
            "unknown config section [nodes]: did you mean [node]? correct or remove it",
        ),
        (
            "[limits]\nmax_file = 3\n",
            {},
            "unknown config key [limits] max_file: did you mean max_files? correct or remove it",
        ),
        (
            "[storage]\ncolour = 3\n",
            {},
            "unknown config key [storage] colour: correct or remove it",
        ),
        (
            "",
            {"TONGBAN_STORAGE_DATABSE": "x"},
            "unknown environment variable TONGBAN_STORAGE_DATABSE: "
            "did you mean TONGBAN_STORAGE_DATABASE? correct or unset it",
        ),
        (
            "",
            {"TONGBAN_STORGE_DATABASE": "postgresql://relay@db/tongban"},
            "unknown environment variable TONGBAN_STORGE_DATABASE: "
            "did you mean TONGBAN_STORAGE_DATABASE? correct or unset it",
        ),
        (
            "",
            {"TONGBAN_HAL": "fed/420700/halls/420700-hall-1"},
            "unknown environment variable TONGBAN_HAL: did you mean TONGBAN_HALL? "
            "correct or unset it",
        ),
        ("", {"TONGBAN_XYZ": "1"}, "unknown environment variable TONGBAN_XYZ: correct or unset it"),
        ('[limits]\nmax_files = "many"\n', {}, "[limits] max_files: 'many' is not a valid int"),
        (
            "[limits]\nsegment_size = 0\n",
            {},
            "[limits] segment_size must be between 1 byte and 4 MiB",
        ),
        (
            "[limits]\nmax_message_bytes = 1048576\n",
            {},
            "[limits] max_message_bytes must exceed segment_size by 64 KiB",
        ),
        (
            "[admission]\nidle_timeout_seconds = 0\n",
            {},
            "[admission] idle_timeout_seconds must be above 0",
        ),
        ("[admission]\npeer_calls = 0\n", {}, "[admission] peer_calls must be at least 1"),
        (
            "",
            {"TONGBAN_NODE_HEALTH_PROBE_SECONDS": "0"},
            "[node] health_probe_seconds must be above 0",
        ),
        (
            "",
            {"TONGBAN_STORAGE_LONGEST_TRANSFER_SECONDS": "0"},
            "[storage] longest_transfer_seconds must be above 0",
        ),
        (
            "",
            {
                "TONGBAN_NODE_CLOCK_SKEW_TOLERANCE_SECONDS": "30",
                "TONGBAN_NODE_CLOCK_SKEW_REFUSE_SECONDS": "10",
            },
            "[node] clock_skew_tolerance_seconds must be above 0 and at most "
            "clock_skew_refuse_seconds",
        ),
        (
            "[admission]\nhall_calls = 8\nhall_calls_per_caller = 9\n",
            {},
            "[admission] hall_calls_per_caller must not exceed hall_calls",
        ),
        (
            "[admission]\nverify_calls_per_address = 1\n",
            {},
            "unknown config key [admission] verify_calls_per_address: "
            "did you mean verify_calls_per_caller? correct or remove it",
        ),
        (
            "[limits]\nmax_anonymous_verify_bytes = 0\n",
            {},
            "[limits] max_anonymous_verify_bytes must be at least 1",
        ),
    ],
)
def test_bad_configuration_is_refused(
    tmp_path: Path, extra: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, MINIMAL + extra), environ=environ)
    assert str(exc.value) == message


def test_admission_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, MINIMAL + "[admission]\nidle_timeout_seconds = 5\n"),
        environ={"TONGBAN_ADMISSION_HALL_CALLS_PER_CALLER": "3"},
    )
    a = cfg.admission
    assert (a.idle_timeout_seconds, a.hall_calls, a.hall_calls_per_caller) == (5.0, 64, 3)
    assert (a.peer_calls, a.peer_calls_per_caller, a.admin_calls, a.admin_calls_per_caller) == (
        48,
        16,
        8,
        4,
    )
    assert (a.health_calls, a.health_calls_per_caller, a.ops_calls, a.ops_calls_per_caller) == (
        8,
        2,
        8,
        2,
    )
    assert (a.verify_calls, a.verify_calls_per_caller, a.spare_threads) == (16, 4, 8)
    assert cfg.limits.max_anonymous_verify_bytes == 64 << 20
    assert load_config(_write(tmp_path, MINIMAL), environ={}).admission.idle_timeout_seconds == 60


def test_missing_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing config key \[keys\] dir"):
        load_config(_write(tmp_path, MINIMAL.replace('[keys]\ndir = "keys"\n', "")), environ={})
