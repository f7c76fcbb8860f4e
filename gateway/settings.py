"""Gateway settings: one frozen dataclass. Precedence: defaults < MODERATION_* env vars < flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, fields

from gateway.tls import check_tls_settings, check_triton_tls_settings

ENV_PREFIX = "MODERATION_"


def parse_buckets(value: str | tuple[int, ...]) -> tuple[int, ...]:
    """'16,32,64' -> (16, 32, 64); empty -> () (no buckets: pad to the text's own length)."""
    if isinstance(value, tuple):
        return value
    return tuple(int(part) for part in str(value).replace(" ", "").split(",") if part)


@dataclass(frozen=True)
class Settings:
    listen_address: str = "127.0.0.1:50051"
    triton_url: str = "127.0.0.1:8001"  # Triton's gRPC endpoint
    model_repository: str = "model_repository"  # the directory Triton serves (tokenizer, labels)
    model_name: str = "toxicity"
    model_version: str = ""  # pin a version; empty: the highest version Triton has ready
    policy_path: str = ""  # TOML policy (thresholds, severity, actions, lists); empty: the shipped default
    max_text_chars: int = 2000  # longer messages get INVALID_ARGUMENT
    max_batch_texts: int = 64  # ClassifyTextBatch limit
    # Concurrent RPCs, streams included; past this, callers get RESOURCE_EXHAUSTED at once, so
    # nothing queues inside the gateway. About what Triton works on at once (2 instances x 32
    # rows); more would only wait (docs/decisions/0013-max-in-flight.md).
    max_in_flight: int = 64
    # Concurrent small calls are merged into one Triton request of up to coalesce_max_rows rows;
    # the first waits at most coalesce_wait_us for company (0: off; gateway/coalescer.py,
    # docs/decisions/0012-request-coalescing.md).
    coalesce_max_rows: int = 16
    coalesce_wait_us: int = 1000
    # Long texts are scored as windows of the version's max_length sharing this many tokens, and
    # take their worst window's scores (gateway/windows.py).
    window_overlap_tokens: int = 32
    max_rows_per_call: int = 64  # rows per Triton request: the model's max_batch_size
    # With explain, words left out one at a time (past this, adjacent words in groups; gateway/explain.py).
    explain_max_words: int = 32
    explain_min_weight: float = 0.05  # score drop a word's removal must cause to be evidence
    explain_max_spans: int = 5  # evidence spans per verdict, strongest first
    triton_timeout_s: float = 2.0  # per model call, when the caller's deadline is later or unset
    length_buckets: tuple[int, ...] = ()  # e.g. (16, 32, 64, 128) for GPU libtorch serving
    health_poll_s: float = 1.0  # how often Triton's readiness is checked
    admin_listen_address: str = "127.0.0.1:50052"  # the admin API's own port; empty: no admin API
    admin_token_file: str = ""  # file holding the admin bearer token (owner-only, 32+ characters); empty: admin refused
    voice_enabled: bool = True  # ClassifyVoice (needs the asr extra)
    whisper_model: str = "tiny.en"  # packaged tiny.en / base, or a local model directory
    whisper_device: str = "cpu"
    # Whisper's decoder makes one token at a time, in matrices too small to split across threads:
    # more workers of one thread each serve concurrent callers better than more threads.
    asr_threads: int = 1  # CPU threads per transcription
    asr_workers: int = 2  # transcriptions at once
    asr_batch: int = 2  # clips one worker decodes together when callers overlap (asr.batched_decode)
    asr_queue: int = 4  # clips that may wait; past this, RESOURCE_EXHAUSTED at once
    asr_beam_size: int = 1  # 1: greedy decoding (about twice as fast on short clips)
    # Seconds of audio Whisper's encoder sees at least (30: Whisper's own padded window); a short
    # clip then costs less (docs/decisions/0006-whisper-encoder-window.md).
    asr_window_s: float = 7.0
    asr_timeout_s: float = 30.0  # per transcription, when the caller's deadline is later or unset
    # Whisper in worker processes (asr.executors), so a crash or a leak in the speech stack cannot
    # take the chat path with it; False runs it in the gateway's process (one model in memory).
    asr_process: bool = True
    default_language: str = "en"
    max_audio_s: float = 30.0  # longer clips get INVALID_ARGUMENT
    max_audio_bytes: int = 16 * 1024 * 1024
    max_streams: int = 16  # concurrent StreamVoice calls; past this, RESOURCE_EXHAUSTED
    max_stream_s: float = 600.0  # audio per StreamVoice call
    max_chunk_bytes: int = 64 * 1024  # per AudioChunk (2 s of 16 kHz PCM16)
    grace_s: float = 5.0  # on shutdown, how long in-flight calls may finish
    log_level: str = "INFO"
    # --- TLS and caller identity (gateway/tls.py, gateway/callers.py; docs/security.md) ---
    tls_cert: str = ""  # server certificate (PEM) for the public and admin ports; empty: plaintext
    tls_key: str = ""  # its private key; both files are re-read when they change (rotation)
    tls_ca: str = ""  # CA that signs client certificates (mTLS); the admin port requires one with TLS on
    tls_client_auth: str = "none"  # public port: none | require (optional is refused: see gateway/tls.py)
    api_keys_file: str = ""  # TOML callers (hashed keys, limits, scope); empty: no caller identity
    allow_anonymous: bool = False  # without keys or mTLS, listen beyond loopback only when this says so
    triton_tls_ca: str = ""  # CA of a remote Triton's gRPC certificate; set: TLS to Triton
    triton_tls_cert: str = ""  # client certificate for Triton, if it requires one
    triton_tls_key: str = ""  # its key
    # --- metrics, log format, Triton replicas, fleet version (metrics helper) ---
    # triton_url above may also be `dns:///<name>:<port>` (every address the name resolves to,
    # round robin) or a list `h1:p1,h2:p2` (gateway/triton_pool.py).
    metrics_listen_address: str = "127.0.0.1:9464"  # Prometheus /metrics (gateway/metrics.py); empty: off
    log_format: str = "text"  # json: one object per line, for log collectors (gateway/logformat.py)
    # A file holding the version number to serve; every gateway watching it switches when it
    # changes (a ConfigMap for a fleet; gateway/watch.py). Empty: versions change by the admin API only.
    version_file: str = ""
    watch_interval_s: float = 1.0  # how often version_file and policy_path are checked for changes
    # --- front: per-connection and per-peer limits (issue 15; gateway/wire.py, gateway/admission.py) ---
    # Calls in flight on one connection and from one address, so one client cannot take every
    # place (0: 3/4 and 7/8 of max_in_flight; behind a proxy every call comes from one address).
    max_in_flight_per_connection: int = 0
    max_in_flight_per_peer: int = 0
    # HTTP/2 streams one connection may open; past it gRPC refuses the stream. Above max_in_flight:
    # a client that opens streams faster than it learns the limit gets UNAVAILABLE.
    max_streams_per_connection: int = 100
    request_read_timeout_s: float = 10.0  # a call whose request message has not arrived by then is cancelled (slow clients)
    default_deadline_s: float = 60.0  # unary calls that carry no deadline are cancelled after this
    max_connection_age_s: float = 1800.0  # connections are closed after about this long (clients reconnect and rebalance)
    max_connection_age_grace_s: float = 30.0  # calls still open that long after the age are cut, freeing what they held
    max_connection_idle_s: float = 300.0  # connections without calls for this long are closed
    # --- security: Triton's control key, admin hygiene, activation smoke test (tritonsec) ---
    # Key for Triton's model control when Triton runs apart (moderation-serve hands its own over).
    triton_control_key_file: str = ""
    secret_files_group_readable: bool = False  # accept 0640 secret files (Kubernetes secret volumes with fsGroup)
    policy_dir: str = ""  # ReloadPolicy reads only files under it; empty: the directory of policy_path
    policy_max_bytes: int = 1024 * 1024  # a policy file larger than this is refused unread
    admin_max_auth_failures: int = 5  # failed admin calls per peer address and window; then RESOURCE_EXHAUSTED
    admin_auth_window_s: float = 60.0  # the failure-counting window (also: one log line per peer per window)
    # Known toxic and clean texts a version must judge right before activation moves traffic to
    # it; empty: the shipped gateway/smoke_texts.toml.
    smoke_texts_path: str = ""
    # --- StreamVoice limits (gateway/voice.py; issue 15, part 5) ---
    stream_min_chunk_ms: float = 20.0  # shorter chunks, the last excepted, are refused: cost per message, no audio
    stream_max_speed: float = 2.0  # audio arriving faster than this x real time is refused: live voice comes at 1x
    stream_burst_s: float = 5.0  # audio a stream may send ahead of that pace (chunks queued while it connected)
    stream_idle_timeout_s: float = 10.0  # no chunk for this long: DEADLINE_EXCEEDED, the stream's slot is freed
    stream_max_wall_s: float = 900.0  # a stream's whole life, pauses and speech recognition included

    def __post_init__(self) -> None:
        object.__setattr__(self, "length_buckets", parse_buckets(self.length_buckets))
        for name in ("max_text_chars", "max_batch_texts", "max_in_flight", "asr_threads",
                     "asr_workers", "asr_batch", "max_audio_bytes", "asr_beam_size", "max_streams", "max_chunk_bytes", "coalesce_max_rows",
                     "max_rows_per_call", "explain_max_words", "explain_max_spans"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.asr_queue < 0:
            raise ValueError(f"asr_queue must be >= 0, got {self.asr_queue}")
        if self.window_overlap_tokens < 0:
            raise ValueError(f"window_overlap_tokens must be >= 0, got {self.window_overlap_tokens}")
        if self.explain_max_words >= self.max_rows_per_call:  # an explained row and its copies share one call
            raise ValueError(f"explain_max_words must be < max_rows_per_call ({self.max_rows_per_call}), "
                             f"got {self.explain_max_words}")
        if self.coalesce_wait_us < 0:
            raise ValueError(f"coalesce_wait_us must be >= 0, got {self.coalesce_wait_us}")
        if not 1.0 <= self.asr_window_s <= 30.0:  # Whisper's own window is 30 s
            raise ValueError(f"asr_window_s must be in 1..30 seconds, got {self.asr_window_s}")
        for name in ("triton_timeout_s", "health_poll_s", "max_audio_s", "max_stream_s", "asr_timeout_s",
                     "stream_min_chunk_ms", "stream_burst_s", "stream_idle_timeout_s", "stream_max_wall_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.stream_max_speed < 1.0:  # under 1x, live audio itself would be refused
            raise ValueError(f"stream_max_speed must be >= 1, got {self.stream_max_speed}")
        if list(self.length_buckets) != sorted(set(self.length_buckets)) or any(b < 2 for b in self.length_buckets):
            raise ValueError(f"length_buckets must be increasing token counts >= 2, got {self.length_buckets}")
        for name in ("policy_max_bytes", "admin_max_auth_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.admin_auth_window_s <= 0:
            raise ValueError(f"admin_auth_window_s must be > 0, got {self.admin_auth_window_s}")
        for name in ("max_in_flight_per_connection", "max_in_flight_per_peer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_streams_per_connection < 1:
            raise ValueError(f"max_streams_per_connection must be >= 1, got {self.max_streams_per_connection}")
        for name in ("request_read_timeout_s", "default_deadline_s", "max_connection_age_s",
                     "max_connection_age_grace_s", "max_connection_idle_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if ":" not in self.listen_address:
            raise ValueError("listen_address must be host:port")
        check_tls_settings(self.tls_cert, self.tls_key, self.tls_ca, self.tls_client_auth,
                           bool(self.admin_listen_address))
        check_triton_tls_settings(self.triton_tls_ca, self.triton_tls_cert, self.triton_tls_key)
        self._check_metrics_block()

    def _check_metrics_block(self) -> None:
        from gateway.triton_pool import parse_triton_url

        parse_triton_url(self.triton_url)  # ValueError says what is wrong with it
        if self.metrics_listen_address and not _is_host_port(self.metrics_listen_address):
            raise ValueError(f"metrics_listen_address must be host:port or empty, got {self.metrics_listen_address!r}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be text or json, got {self.log_format!r}")
        if self.watch_interval_s <= 0:
            raise ValueError(f"watch_interval_s must be > 0, got {self.watch_interval_s}")

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _is_host_port(address: str) -> bool:
    _, sep, port = address.rpartition(":")
    return bool(sep) and port.isdigit() and int(port) <= 65535


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _converter(field_type):
    return {"int": int, "float": float, "bool": parse_bool, "tuple[int, ...]": parse_buckets}.get(str(field_type), str)


def build_parser(env=os.environ, prog: str = "moderation-gateway") -> argparse.ArgumentParser:
    """One --flag per Settings field; its default is the MODERATION_<FIELD> env var, else the field's."""
    parser = argparse.ArgumentParser(prog=prog, description="Moderation gRPC gateway in front of Triton.")
    values = {}
    for field in fields(Settings):
        convert = _converter(field.type)
        env_name = ENV_PREFIX + field.name.upper()
        try:
            values[field.name] = convert(env[env_name]) if env_name in env else field.default
        except ValueError as err:
            raise SystemExit(f"{env_name}: {err}") from None
        parser.add_argument("--" + field.name.replace("_", "-"), type=convert, default=values[field.name],
                            help=f"(env {env_name}; default {field.default!r})")
    return parser


def load_settings(argv=None, env=os.environ, prog: str = "moderation-gateway") -> Settings:
    """Builds Settings from defaults, then MODERATION_<FIELD> env vars, then --flags."""
    parser = build_parser(env, prog)
    try:
        return Settings(**vars(parser.parse_args(argv)))
    except ValueError as err:
        parser.error(str(err))
