"""Locust load test for the moderation gateway (gRPC).

    locust -f loadtest/locustfile.py --host 127.0.0.1:50051            # web UI on :8089
    locust -f loadtest/locustfile.py --host 127.0.0.1:50051 --headless -u 32 -r 8 -t 60s --csv out

Every call fires Locust's `request` event with its own name, response time and, for an RpcError,
an exception named after the status code, so RESOURCE_EXHAUSTED, UNAVAILABLE and
DEADLINE_EXCEEDED show up as separate failures. Tasks are weighted like game traffic: mostly
single chat messages, some batches, a few voice clips (espeak-ng clips made once and cached).

Environment (python -m loadtest.run_load sets these for each run):
    LOADTEST_TEXT_WEIGHT   weight of single-message ClassifyText in ChatUser (default 20)
    LOADTEST_BATCH_WEIGHT  weight of ClassifyTextBatch in ChatUser (default 1; 0: never)
    LOADTEST_BATCH_SIZE    messages per ClassifyTextBatch (default 16)
    LOADTEST_VOICE_WEIGHT  VoiceUser weight against ChatUser's 10 (default 1)
    LOADTEST_USER_RATE     calls per second per user, as a Poisson process (random gaps, so users
                           do not fire in lockstep), so that users x rate is the offered load;
                           0 (default): each user calls again as soon as it is answered (closed
                           loop, 0-50 ms think time)
    LOADTEST_TIMEOUT_S     deadline of every call (default 10)
    LOADTEST_CLIP_DIR      where the espeak-ng clips are cached
    LOADTEST_TLS_CA, LOADTEST_TLS_CERT, LOADTEST_TLS_KEY
                           TLS to the gateway (CA file; client certificate and key for mTLS)
    MODERATION_API_KEY     sent as `authorization: Bearer <key>` on every call
"""

from __future__ import annotations

import os
import random
import time

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, between, events, task

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.tls import API_KEY_ENV, secure_channel_from_files
from loadtest.corpus import chat_messages, voice_clips

# Locust runs every user as a greenlet on one thread; without this a blocking gRPC call blocks
# them all and only one call is ever in flight (locust's own examples/grpc does the same).
grpc_gevent.init_gevent()

CORPUS = chat_messages(4096)
BATCH_SIZE = int(os.environ.get("LOADTEST_BATCH_SIZE", "16"))
TEXT_WEIGHT = int(os.environ.get("LOADTEST_TEXT_WEIGHT", "20"))
BATCH_WEIGHT = int(os.environ.get("LOADTEST_BATCH_WEIGHT", "1"))
CALL_TIMEOUT_S = float(os.environ.get("LOADTEST_TIMEOUT_S", "10"))
USER_RATE = float(os.environ.get("LOADTEST_USER_RATE", "0"))
TLS_FILES = tuple(os.environ.get(f"LOADTEST_TLS_{part}", "") for part in ("CA", "CERT", "KEY"))
METADATA = [("authorization", f"Bearer {os.environ[API_KEY_ENV]}")] if os.environ.get(API_KEY_ENV) else []


def poisson_pacing(rate: float):
    """A Locust wait_time: calls at exponential gaps of mean 1/rate, on a schedule that does not
    move with response times (a user that fell behind starts again from now, without a burst)."""

    def wait_time(user) -> float:
        now = time.monotonic()
        due = max(getattr(user, "_next_call_at", now), now) + random.expovariate(rate)
        user._next_call_at = due
        return due - now

    return wait_time


class RpcStatusError(Exception):
    """Locust groups failures by exception text: one entry per status code."""


class GatewayUser(User):
    abstract = True
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.channel = (secure_channel_from_files(self.host, *TLS_FILES) if TLS_FILES[0]
                        else grpc.insecure_channel(self.host))
        self.stub = moderation_pb2_grpc.ModerationStub(self.channel)
        self.rng = random.Random()

    def on_stop(self) -> None:
        self.channel.close()

    def call(self, name: str, method, request, size: int) -> None:
        started = time.perf_counter()
        exception = None
        try:
            method(request, timeout=CALL_TIMEOUT_S, metadata=METADATA)
        except grpc.RpcError as err:
            exception = RpcStatusError(err.code().name)
        # a failed call is reported under "<task> <STATUS>": Locust then gives each status its own
        # latency percentiles (how fast RESOURCE_EXHAUSTED answers, for one)
        events.request.fire(request_type="grpc", name=name if exception is None else f"{name} {exception}", response_time=(time.perf_counter() - started) * 1e3,
                            response_length=size, exception=exception, context={})


class ChatUser(GatewayUser):
    """Players typing: single messages (the bulk), sometimes a batch from a game server."""

    weight = 10
    # paced: a rejected call does not make the user call again at once. A user still waits for
    # each answer, so once latency exceeds the gaps the achieved rate falls below users x rate
    # (the summary reports the achieved req/s)
    wait_time = poisson_pacing(USER_RATE) if USER_RATE > 0 else GatewayUser.wait_time

    @task(TEXT_WEIGHT)
    def classify_text(self) -> None:
        text = self.rng.choice(CORPUS)
        self.call("ClassifyText", self.stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text=text), len(text))

    @task(BATCH_WEIGHT)
    def classify_batch(self) -> None:
        texts = self.rng.sample(CORPUS, BATCH_SIZE)
        request = moderation_pb2.ClassifyTextBatchRequest(texts=texts)
        self.call("ClassifyTextBatch", self.stub.ClassifyTextBatch, request, sum(map(len, texts)))


class VoiceUser(GatewayUser):
    """Players talking: short voice clips."""

    weight = int(os.environ.get("LOADTEST_VOICE_WEIGHT", "1"))
    # paced like ChatUser when LOADTEST_USER_RATE is set: with weights 10:1 about 9% of the
    # offered calls are then voice clips
    wait_time = poisson_pacing(USER_RATE) if USER_RATE > 0 else between(0.5, 1.5)
    clips: list[bytes] = []

    def on_start(self) -> None:
        super().on_start()
        if not VoiceUser.clips:
            VoiceUser.clips = voice_clips()

    @task
    def classify_voice(self) -> None:
        if not self.clips:
            return
        clip = self.rng.choice(self.clips)
        self.call("ClassifyVoice", self.stub.ClassifyVoice, moderation_pb2.ClassifyVoiceRequest(audio=clip), len(clip))
