"""The SSRF guard: private, loopback, link-local and metadata addresses are refused at
registration and again at delivery time, unless CREDIT_WEBHOOK_ALLOW_PRIVATE=true."""

from __future__ import annotations

import pytest

from app.infrastructure.webhooks import AddressGuard, UnsafeUrl
from app.testing import assert_error
from tests.modules.integrations.conftest import register_endpoint


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_the_guard_refuses_addresses_that_are_not_public(address):
    guard = AddressGuard(resolver=lambda host, port: [address])
    with pytest.raises(UnsafeUrl):
        guard.check("https://hooks.example.com/x")


def test_the_guard_refuses_a_host_with_any_private_address_and_pins_a_public_one():
    mixed = AddressGuard(resolver=lambda host, port: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(UnsafeUrl, match="10.0.0.1"):
        mixed.check("https://hooks.example.com/x")
    target = AddressGuard(resolver=lambda host, port: ["93.184.216.34"]).check("https://hooks.example.com:8443/x")
    assert (target.host, target.address) == ("hooks.example.com", "93.184.216.34")


def test_the_guard_refuses_what_does_not_resolve_and_other_schemes():
    def nowhere(host, port):
        raise OSError("no such host")

    with pytest.raises(UnsafeUrl, match="does not resolve"):
        AddressGuard(resolver=nowhere).check("https://nowhere.invalid/x")
    for url in ("ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http://:80/"):
        with pytest.raises(UnsafeUrl):
            AddressGuard(allow_private=True).check(url)


@pytest.mark.credit_settings(webhook_allow_private=False)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://10.0.0.1/x",
    ],
)
def test_registration_refuses_private_urls(credit_client, people, url):
    response = credit_client.post("/webhooks/endpoints", json={"url": url}, headers=people.admin.headers)
    assert "url" in assert_error(response, 422, "validation_error")["details"]
    assert credit_client.get("/webhooks/endpoints", headers=people.admin.headers).json["items"] == []


@pytest.mark.credit_settings(webhook_allow_private=True, webhook_retry_schedule="60")
def test_delivery_time_checks_again(credit_app, credit_client, people, receiver):
    """Allowed when registered; refused when sent (as if DNS had changed meanwhile)."""
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    credit_app.container.webhook_service()._guard.allow_private = False
    response = credit_client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": 1},
        headers=people.alice.headers,
    )
    assert response.status_code == 201
    (delivery,) = credit_client.get(
        f"/webhooks/endpoints/{endpoint['id']}/deliveries", headers=people.admin.headers
    ).json["items"]
    assert delivery["status"] == "pending" and "loopback" in delivery["last_error"]
    assert receiver.received == []
