"""Who may reach a server: the bind rule in each app's words, a port in use, and which Host headers are answered."""

from __future__ import annotations

import socket

import pytest

from tunesmith.web import AllowedHosts, BindRule, check_port, is_loopback

RULE = BindRule(secret="a pass", option="--pass", variable="PASS", exposes="read the secrets")


def test_the_bind_rule_speaks_the_apps_words(error_of):
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"):
        RULE.check(host, None)
    RULE.check("0.0.0.0", "s3cret")
    message = error_of(lambda: RULE.check("0.0.0.0", None))
    assert message.startswith("config: --host: binding 0.0.0.0 (not a loopback address) without a pass would let")
    assert "read the secrets" in message and "give --pass (or set PASS)" in message


def test_a_port_in_use_is_one_line_naming_the_option(error_of):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = error_of(lambda: check_port("127.0.0.1", port))
    assert message.startswith(f"config: --port: cannot listen on 127.0.0.1:{port}") and "another --port" in message
    check_port("127.0.0.1", port)  # closed again: free


@pytest.mark.parametrize("header", ["localhost", "localhost:7860", "LocalHost:1", "localhost.", "127.0.0.1",
                                    "127.0.0.1:8000", "127.9.9.9:80", "[::1]", "[::1]:8000"])
def test_loopback_names_are_answered_on_any_port(header):
    assert AllowedHosts.of("127.0.0.1").refusal(header) is None


@pytest.mark.parametrize("header", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil.example",
                                    "[::2]:80", "0.0.0.0:8000", "192.168.1.5", "2130706433",
                                    "evil.example@127.0.0.1", "127.0.0.1/x", "127.0.0.1 evil", "[::1", "", None])
def test_other_hosts_are_refused_with_a_400_that_says_how_to_admit_one(header):
    refusal = AllowedHosts.of("127.0.0.1").refusal(header)
    assert refusal is not None and refusal.status == 400 and refusal.code == "invalid_host"
    assert "\n" not in refusal.message


def test_the_refusal_names_the_option_that_admits_the_name():
    message = AllowedHosts.of("127.0.0.1").refusal("Models.Example:443").message
    assert "'models.example'" in message and message.endswith("start it with --allowed-host models.example")


def test_the_bound_address_and_the_allowed_names_are_answered():
    hosts = AllowedHosts.of("192.168.1.5", ["Models.Example", "10.0.0.7", "[fd00::1]:8000"])
    for header in ("192.168.1.5:8000", "models.example", "MODELS.EXAMPLE:443", "10.0.0.7", "[fd00::1]", "localhost"):
        assert hosts.refusal(header) is None, header
    assert hosts.refusal("other.example") is not None
    assert AllowedHosts.of("::").refusal("[::]:8000") is None  # the wildcard itself, as an address
    assert AllowedHosts.of("0.0.0.0").refusal("192.168.1.5") is not None  # a wildcard admits no name by itself


def test_a_malformed_allowed_host_is_one_line(error_of):
    for given in ("http://models.example", "models.example/path", "", "a b"):
        assert error_of(lambda: AllowedHosts.of("127.0.0.1", [given])).startswith("config: --allowed-host: ")


def test_is_loopback():
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("evil.example") and not is_loopback("::")


@pytest.mark.parametrize("origin", [None, "http://localhost:3000", "http://127.0.0.1:7860", "https://[::1]:8443",
                                    "http://localhost.", "http://models.example"])
def test_an_origin_the_server_answers_to_is_admitted(origin):
    assert AllowedHosts.of("127.0.0.1", ["models.example"]).origin_refusal(origin) is None


@pytest.mark.parametrize(("origin", "name"), [("http://evil.example", "evil.example"),
                                              ("http://127.0.0.1.evil.example:80", "127.0.0.1.evil.example"),
                                              ("null", "NAME"), ("http://[::1", "NAME"), ("", "NAME")])
def test_a_page_of_another_site_is_refused_with_a_403_naming_the_option(origin, name):
    refusal = AllowedHosts.of("127.0.0.1").origin_refusal(origin)
    assert refusal is not None and refusal.status == 403 and refusal.code == "invalid_origin"
    assert refusal.message.endswith(f"start the server with --allowed-host {name}") and "\n" not in refusal.message
