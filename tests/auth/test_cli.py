"""`routiine tenants` and `routiine serve` on the command line: connect on loopback, remove, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest
import requests

from auth.helpers import make_setup
from routiine_pipeline.cli import main
from routiine_pipeline.control.store import CONNECTED
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.emulator import Clock, Org


@pytest.fixture
def cli_env(emulator_env, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return emulator_env


def test_connect_prints_url_and_receives_callback(cli_env, redirect_uri):
    setup = make_setup(Org(clock=Clock()), cli_env, redirect_uri)
    setup.server.auto_approve = True
    try:
        assert main(["tenants", "add", "acme", "--login-url", setup.server.url]) == 0
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "routiine"),
                "tenants",
                "connect",
                "acme",
                "--timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        url = None
        for line in process.stdout:
            if line.strip().startswith(
                setup.server.url + "/services/oauth2/authorize?"
            ):
                url = line.strip()
                break
        assert url is not None
        fetch = threading.Thread(
            target=requests.get, args=(url,), kwargs={"timeout": 30}
        )
        fetch.start()
        rest, errors = process.communicate(timeout=90)
        fetch.join(30)
        assert process.returncode == 0, errors
        assert f"Tenant acme is connected (instance {setup.server.url})" in rest
        assert setup.store.get_tenant("acme").status == CONNECTED
    finally:
        setup.server.stop()


def test_remove_revokes_and_drops_partition(cli_env, redirect_uri, capsys):
    setup = make_setup(Org(clock=Clock()), cli_env, redirect_uri)
    try:
        assert main(["tenants", "add", "acme", "--login-url", setup.server.url]) == 0
        state, code = setup.authorize("acme")
        setup.connector.complete(state=state, code=code, tenant_id="acme")
        tokens = setup.tokens("acme")
        access, refresh = tokens.access_token(), tokens.refresh_token()
        assert dg.DagsterInstance.get().has_dynamic_partition(
            tenant_partitions.name, "acme"
        )
        assert main(["tenants", "remove", "acme"]) == 0
        assert "Removed tenant acme and revoked its tokens" in capsys.readouterr().out
        assert setup.org.tokens._refresh[refresh].revoked is True
        assert setup.org.tokens.is_valid_access_token(access) is False
        assert not dg.DagsterInstance.get().has_dynamic_partition(
            tenant_partitions.name, "acme"
        )
        assert setup.store.list_tenants() == []
    finally:
        setup.server.stop()


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["tenants", "add", "Bad Id"], {}, "error: invalid tenant id 'Bad Id'"),
        (
            ["tenants", "add", "acme", "--org-type", "my_domain"],
            {},
            "error: a My Domain org needs its domain",
        ),
        (
            [
                "tenants",
                "add",
                "acme",
                "--org-type",
                "my_domain",
                "--my-domain",
                "acme.evil.example",
            ],
            {},
            "error: invalid My Domain 'acme.evil.example'",
        ),
        (
            ["tenants", "add", "acme", "--my-domain", "acme"],
            {},
            "error: a My Domain ('acme') was given for org type 'production'",
        ),
        (
            ["tenants", "add", "acme", "--login-url", "http://127.0.0.1:8765"],
            {"ROUTIINE_ALLOW_LOOPBACK": ""},
            "loopback needs ROUTIINE_ALLOW_LOOPBACK=1",
        ),
        (
            ["tenants", "remove", "ghost"],
            {},
            "error: tenant 'ghost' not found in the control store",
        ),
        (
            ["tenants", "connect", "acme"],
            {"ROUTIINE_SF_CLIENT_SECRET": ""},
            "error: ROUTIINE_SF_CLIENT_SECRET is not set",
        ),
        (
            ["tenants", "connect", "acme"],
            {"ROUTIINE_SF_REDIRECT_URI": "http://evil.example/cb"},
            "error: ROUTIINE_SF_REDIRECT_URI='http://evil.example/cb' is not a valid callback URL",
        ),
        (["tenants", "list"], {"ROUTIINE_VAULT_KEYS": "k1:not-base64!!"}, None),
        (
            ["keys", "rotate"],
            {"ROUTIINE_VAULT_KEYS": "k1:not-base64!!"},
            "error: vault key 'k1' is not valid base64",
        ),
        (
            ["serve", "--host", "0.0.0.0"],
            {},
            "error: --host 0.0.0.0 is not a loopback address",
        ),
        (
            ["serve", "--port", "9"],
            {"ROUTIINE_SF_REDIRECT_URI": "http://127.0.0.1:8717/oauth/callback"},
            "error: the redirect URI http://127.0.0.1:8717/oauth/callback points to port 8717, not --port 9",
        ),
    ],
)
def test_bad_arguments_and_config(cli_env, monkeypatch, capsys, argv, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(argv)
    err = capsys.readouterr().err
    if expected is None:
        assert code == 0
        return
    assert code == 1
    assert expected in err
    assert "Traceback" not in err


def test_unknown_org_type_rejected(cli_env, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["tenants", "add", "acme", "--org-type", "enterprise"])
    assert raised.value.code == 2
    assert "invalid choice: 'enterprise'" in capsys.readouterr().err
