"""The [web] section: the verification site's listener, its address in QR codes, its limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.test_config import MINIMAL, _write
from tongban.server.config import ConfigError, WebSite, load_config


def test_no_site_by_default_and_seals_keep_their_configured_address(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL), environ={})
    assert cfg.web == WebSite()
    assert (cfg.web.listen, cfg.web.max_upload_bytes, cfg.web.requests_per_minute) == (
        "",
        20 << 20,
        120,
    )
    old = MINIMAL + '[seals]\nverification_url = "https://old.example/ecert"\n'
    assert load_config(_write(tmp_path, old), environ={}).verification_url == (
        "https://old.example/ecert"
    )


def test_new_seals_carry_the_site_address(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[web]\nlisten = "0.0.0.0:8443"\nsite_url = "https://verify.wuhan.example/"\n'
        'tls_cert = "web/site.pem"\ntls_key = "web/site-key.pem"\nmax_upload_bytes = 1024\n'
    )
    cfg = load_config(_write(tmp_path, text), environ={"TONGBAN_WEB_REQUESTS_PER_MINUTE": "7"})
    assert cfg.verification_url == "https://verify.wuhan.example/v"
    assert cfg.web == WebSite(
        listen="0.0.0.0:8443",
        site_url="https://verify.wuhan.example/",
        tls_cert=tmp_path / "web" / "site.pem",
        tls_key=tmp_path / "web" / "site-key.pem",
        max_upload_bytes=1024,
        requests_per_minute=7,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[web]\nsite_url = "https://a.example"\n[seals]\nverification_url = "https://b"\n',
            "[seals] verification_url and [web] site_url both set: QR codes carry the site's "
            "address; remove verification_url",
        ),
        (
            '[web]\nsite_url = "verify.example"\n',
            "[web] site_url 'verify.example' must start with https:// or http://",
        ),
        ("[web]\nmax_upload_bytes = 0\n", "[web] max_upload_bytes must be at least 1"),
        ("[web]\nrequests_per_minute = 0\n", "[web] requests_per_minute must be at least 1"),
        ('[web]\ntls_cert = "a.pem"\n', "[web] tls_cert and tls_key go together"),
        ("[web]\nport = 8443\n", "unknown config key [web] port: correct or remove it"),
    ],
)
def test_bad_web_settings_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, MINIMAL + extra), environ={})
    assert str(exc.value) == message
