"""Secrets from files, Triton's model-control flags, the admin port's guards, the smoke texts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
import numpy as np
import pytest

from gateway.admin_guard import AuthFailureLimiter, allowed_policy_file, peer_host
from gateway.errors import GatewayStartError, InvalidInput
from gateway.policy import load_policy
from gateway.secrets_files import (
    SecretFileError,
    drop_secret_environment,
    read_secret_file,
    without_secrets,
    write_secret_file,
)
from gateway.settings import Settings
from gateway.smoke import load_smoke_texts, wrong_verdicts
from gateway.triton_access import GRPC_HEADER, restriction_args
from gateway.triton_process import TritonProcess, child_environment

TOKEN = "a-test-admin-token-of-40-characters-000000"


# --- secret files ----------------------------------------------------------------------------
def test_secret_file_must_be_owner_only_and_long(tmp_path):
    path = write_secret_file(tmp_path / "token", TOKEN)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_secret_file(path, "admin token") == TOKEN
    for mode in (0o644, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(SecretFileError, match="chmod 600"):
            read_secret_file(path, "admin token")
    path.chmod(0o640)
    with pytest.raises(SecretFileError, match="group-readable"):
        read_secret_file(path, "admin token")
    assert read_secret_file(path, "admin token", allow_group_readable=True) == TOKEN
    short = write_secret_file(tmp_path / "short", "x" * 31)
    with pytest.raises(SecretFileError, match="31 characters; at least 32"):
        read_secret_file(short, "admin token")
    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret_file(tmp_path, "admin token")
    with pytest.raises(SecretFileError, match="No such file"):
        read_secret_file(tmp_path / "missing", "admin token")


def test_secret_environment_is_dropped():
    env = {"PATH": "/bin", "MODERATION_ADMIN_TOKEN": TOKEN, "MODERATION_LOG_LEVEL": "INFO"}
    assert without_secrets(env) == {"PATH": "/bin", "MODERATION_LOG_LEVEL": "INFO"}
    assert drop_secret_environment(env) == ["MODERATION_ADMIN_TOKEN"]
    assert "MODERATION_ADMIN_TOKEN" not in env


def test_triton_child_environment_has_no_admin_token(monkeypatch, tmp_path):
    monkeypatch.setenv("MODERATION_ADMIN_TOKEN", TOKEN)
    env = child_environment(tmp_path)
    assert "MODERATION_ADMIN_TOKEN" not in env
    assert TOKEN not in "".join(env.values())


# --- Triton's flags --------------------------------------------------------------------------
def test_triton_command_locks_model_control_turns_http_off_and_splits_metrics(tmp_path):
    triton = TritonProcess(tmp_path, grpc_port=1, metrics_port=3, metrics_host="10.0.0.9", control_key="k" * 43)
    args = triton.command(tmp_path / "backends", tmp_path)
    assert "--grpc-restricted-protocol=model-repository,model-config,shared-memory,trace,logging:" \
           "moderation-control-key=" + "k" * 43 in args
    assert "--allow-http=false" in args and not any(a.startswith("--http-") for a in args)
    assert "--metrics-address=10.0.0.9" in args and "--grpc-address=127.0.0.1" in args
    assert triton.control_headers == {GRPC_HEADER: "k" * 43}
    assert "k" * 43 not in repr(triton)
    with_http = TritonProcess(tmp_path, grpc_port=1, http_port=2, metrics_port=3, http_enabled=True, control_key="k" * 43)
    args = with_http.command(tmp_path / "backends", tmp_path)
    assert "--http-port=2" in args and any(a.startswith("--http-restricted-api=model-repository,") for a in args)


def test_each_triton_gets_its_own_random_key(tmp_path):
    first, second = (TritonProcess(tmp_path, grpc_port=1, metrics_port=3) for _ in range(2))
    assert len(first.control_key) >= 43 and first.control_key != second.control_key
    assert restriction_args("", http=True) == []


# --- admin guards ----------------------------------------------------------------------------
def test_failure_limiter_locks_a_peer_for_the_rest_of_its_window_and_logs_once(caplog):
    now = [100.0]
    limiter = AuthFailureLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="gateway.admin_guard")
    for _ in range(3):
        assert limiter.blocked_for("ipv4:10.0.0.5") == 0
        limiter.record_failure("ipv4:10.0.0.5", "/m", "wrong token")
    now[0] += 10
    assert limiter.blocked_for("ipv4:10.0.0.5") == pytest.approx(50)
    assert limiter.blocked_for("ipv4:10.0.0.6") == 0  # other peers unaffected
    limiter.record_failure("ipv4:10.0.0.5", "/m", "wrong token")
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1  # the first failure of the window only
    assert sum("RESOURCE_EXHAUSTED" in r.getMessage() for r in caplog.records) == 1
    now[0] += 51
    assert limiter.blocked_for("ipv4:10.0.0.5") == 0
    assert "4 failed calls from ipv4:10.0.0.5 in the last window" in caplog.text


def test_peer_host_drops_the_port():
    assert peer_host("ipv4:10.0.0.5:53412") == "ipv4:10.0.0.5"
    assert peer_host("ipv6:[::1]:5") == "ipv6:[::1]"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"


def test_policy_files_only_from_the_policy_directory(tmp_path):
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    good = policy_dir / "p.toml"
    good.write_text("toxic_threshold = 0.5\n")
    outside = tmp_path / "elsewhere.toml"
    outside.write_text("toxic_threshold = 0.5\n")
    (policy_dir / "escape.toml").symlink_to(outside)
    big = policy_dir / "big.toml"
    big.write_text("#" * 2000)
    assert allowed_policy_file("p.toml", "", str(policy_dir), 1000) == str(good.resolve())
    assert allowed_policy_file(str(good), str(good), "", 1000) == str(good.resolve())  # dir of policy_path
    assert allowed_policy_file("", "", "", 1000) == ""  # the shipped default
    for path, message in ((str(outside), "outside the policy directory"),
                          ("escape.toml", "outside the policy directory"),
                          ("../elsewhere.toml", "outside the policy directory"),
                          ("big.toml", "over the 1000-byte cap"),
                          ("missing.toml", "not found"),
                          (str(policy_dir), "not a regular file")):
        with pytest.raises(InvalidInput, match=message):
            allowed_policy_file(path, "", str(policy_dir), 1000)
    with pytest.raises(InvalidInput, match="needs --policy-dir"):
        allowed_policy_file("p.toml", "", "", 1000)
    os.mkfifo(policy_dir / "fifo.toml")
    with pytest.raises(InvalidInput, match="not a regular file"):
        allowed_policy_file("fifo.toml", "", str(policy_dir), 1000)


def _admin_gateway(tmp_path, **changes):
    from gateway.server import create_server

    changes.setdefault("admin_listen_address", "127.0.0.1:0")
    settings = Settings(listen_address="127.0.0.1:0", model_repository=str(tmp_path / "repo"), health_poll_s=3600,
                        **changes)
    return create_server(settings, classifier=_NoModel(), voice=None)[0]


class _NoModel:
    def ready_versions(self):
        return []

    def is_ready(self, version=""):
        return False

    def version_states(self):
        return {}

    def close(self):
        pass


def test_gateway_refuses_to_start_with_an_unsafe_or_short_token_file(tmp_path):
    loose = write_secret_file(tmp_path / "loose", TOKEN)
    loose.chmod(0o644)
    with pytest.raises(GatewayStartError, match="mode 644"):
        _admin_gateway(tmp_path, admin_token_file=str(loose))
    short = write_secret_file(tmp_path / "short", "too-short")
    with pytest.raises(GatewayStartError, match="at least 32"):
        _admin_gateway(tmp_path, admin_token_file=str(short))


def test_admin_token_env_var_is_ignored_and_removed(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MODERATION_ADMIN_TOKEN", TOKEN)
    gateway = _admin_gateway(tmp_path)
    try:
        assert "MODERATION_ADMIN_TOKEN" not in os.environ
        assert "IGNORED" in caplog.text
        from contract.pb import admin_pb2, admin_pb2_grpc

        gateway.start()
        with grpc.insecure_channel(f"127.0.0.1:{gateway.admin_port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                admin_pb2_grpc.ModelAdminStub(channel).ListModelVersions(
                    admin_pb2.ListModelVersionsRequest(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        gateway.stop(0)


def test_failed_admin_calls_lock_the_address_out_even_with_the_right_token(tmp_path):
    from contract.pb import admin_pb2, admin_pb2_grpc

    token_file = write_secret_file(tmp_path / "token", TOKEN)
    gateway = _admin_gateway(tmp_path, admin_token_file=str(token_file), admin_max_auth_failures=3)
    gateway.start()
    request = admin_pb2.ListModelVersionsRequest()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.admin_port}") as channel:
            stub = admin_pb2_grpc.ModelAdminStub(channel)
            assert stub.ListModelVersions(request, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5)
            codes = []
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ListModelVersions(request, metadata=[("authorization", "Bearer guess")], timeout=5)
                codes.append(caught.value.code())
            assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 3
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListModelVersions(request, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            retry = dict(caught.value.trailing_metadata() or ())
            assert 0 < int(retry["retry-after-s"]) <= 60
    finally:
        gateway.stop(0)


# --- smoke texts -----------------------------------------------------------------------------
def test_shipped_smoke_texts_load_and_bad_files_are_refused(tmp_path):
    texts = load_smoke_texts()
    assert texts.toxic and texts.clean
    bad = tmp_path / "bad.toml"
    for body, message in (('toxic = ["a"]\n', "`clean` must be"), ('toxic = []\nclean = ["b"]\n', "`toxic` must be"),
                          ('toxic = ["a"]\nclean = ["b"]\nextra = 1\n', "unknown keys"), ("toxic = [", "smoke texts")):
        bad.write_text(body)
        with pytest.raises(ValueError, match=message):
            load_smoke_texts(bad)


def test_wrong_verdicts_name_the_text_by_index_not_by_content(tmp_path):
    path = tmp_path / "smoke.toml"
    path.write_text('toxic = ["bad words", "worse words"]\nclean = ["nice"]\n')
    texts = load_smoke_texts(path)
    labels = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]
    always_clean = np.tile(np.array([0.99, 0.0025, 0.0025, 0.0025, 0.0025], dtype=np.float32), (3, 1))
    wrong = wrong_verdicts(texts, always_clean, labels, load_policy(""))
    assert [w.split()[0] for w in wrong] == ["toxic[0]", "toxic[1]"]
    assert not any("words" in w for w in wrong)
    right = always_clean.copy()
    right[:2] = [0.01, 0.9, 0.03, 0.03, 0.03]
    assert wrong_verdicts(texts, right, labels, load_policy("")) == []


def test_smoke_texts_path_is_checked_at_start(tmp_path):
    with pytest.raises(GatewayStartError, match="smoke texts"):
        _admin_gateway(tmp_path, admin_listen_address="", smoke_texts_path=str(Path(tmp_path) / "missing.toml"))
