"""The start summary shows where a node keeps things, never the credentials to reach them."""

from __future__ import annotations

import pytest

from tongban.server.summary import database_location, object_store_location


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////srv/tongban/var/metadata.db", "sqlite /srv/tongban/var/metadata.db"),
        (
            "postgresql://relay:s3cret@db.internal:5433/tongban",
            "postgresql db.internal:5433/tongban",
        ),
        ("postgresql+psycopg://relay:s3cret@db/tongban", "postgresql db/tongban"),
        ("postgresql://relay@/tongban?host=/run/postgresql", "postgresql localhost/tongban"),
    ],
)
def test_database_location_drops_user_and_password(url: str, shown: str) -> None:
    assert database_location(url) == shown
    assert "s3cret" not in database_location(url) and "relay" not in database_location(url)


@pytest.mark.parametrize(
    ("objects", "shown"),
    [
        ("/srv/tongban/var/blobs", "filesystem /srv/tongban/var/blobs"),
        (
            "s3://AKIAEXAMPLE:s3cret@objects.internal:9000/tongban",
            "s3 s3://objects.internal:9000/tongban",
        ),
        (
            "http://objects.internal:9000/tongban?secure=false",
            "http http://objects.internal:9000/tongban",
        ),
    ],
)
def test_object_store_location_drops_user_information(objects: str, shown: str) -> None:
    assert object_store_location(objects) == shown
    assert "s3cret" not in object_store_location(objects)
