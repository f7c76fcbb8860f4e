"""Hypothesis strategies for fuzzing every public RPC: well-formed requests with hostile field
values, valid requests with their bytes mutated, protobuf wire data built field by field (wrong
wire types, invalid UTF-8 in string fields), random bytes, and audio files whose headers are
mutated (seeds: espeak-ng speech re-encoded by ffmpeg as WAV, OGG/Opus, MP3, FLAC, WebM, M4A).

Each strategy draws a Case: the method, the payload (bytes; a list of bytes for StreamVoice) and
the family it came from, which the report counts separately.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import strategies as st

from contract.pb import moderation_pb2

SEED_SENTENCE = "good game everyone"
# (suffix, ffmpeg arguments) of the audio seeds; a codec this ffmpeg lacks is left out
SEED_FORMATS = (
    ("wav", ("-c:a", "pcm_s16le")),
    ("ogg", ("-c:a", "libopus", "-b:a", "16k")),
    ("mp3", ("-c:a", "libmp3lame", "-b:a", "32k")),
    ("flac", ("-c:a", "flac")),
    ("webm", ("-c:a", "libopus", "-b:a", "16k")),
    ("m4a", ("-c:a", "aac", "-b:a", "32k")),
)
BITEXACT = ("-fflags", "+bitexact", "-flags:a", "+bitexact")  # no random OGG serials: the same seeds every run
FORMAT_HINTS = ("", "wav", "ogg", "audio/ogg; codecs=opus", "webm", "mp3", "flac", "m4a", "pcm16", "raw",
                "amr", "video/mp4", "\x00", "WAV", ".mp3")
LANGUAGES = ("", "en", "de", "xx", "EN", "zz-top", "haw", "\u00e9n")
RATES = (0, 1, -1, 7999, 8000, 16000, 22050, 44100, 48000, 192000, 192001, 2**31 - 1, -(2**31))


@dataclass(frozen=True)
class Case:
    family: str
    method: str
    payload: bytes | tuple[bytes, ...]


@lru_cache(maxsize=1)
def audio_seeds() -> tuple[bytes, ...]:
    """The seed sentence as WAV bytes and in each format ffmpeg here can write."""
    from loadtest.speech import speak_wav

    wav = speak_wav(SEED_SENTENCE)
    seeds = [wav]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "seed.wav"
        source.write_bytes(wav)
        for suffix, args in SEED_FORMATS[1:]:
            target = Path(tmp) / f"seed.{suffix}"
            done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *args,
                                   *BITEXACT, str(target)], capture_output=True, timeout=60)
            if done.returncode == 0:
                seeds.append(target.read_bytes())
    return tuple(seeds)


# --- text that goes where strings go ------------------------------------------------------------
_HOSTILE_CHARS = st.sampled_from(["\x00", "\u200b", "\u200d", "\ufeff", "\r", "\n", "\u202e", "\U0001f600",
                                  "\ud7ff", "\uffff", "a", " ", "\t", "\u0301"])
plain_texts = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789 !?"), min_size=1, max_size=60).filter(str.strip)
texts = st.one_of(plain_texts, st.text(max_size=200), st.text(_HOSTILE_CHARS, max_size=50),
                  st.text(max_size=3000), st.just(""), st.text(_HOSTILE_CHARS, min_size=2001, max_size=2100))
request_ids = st.one_of(st.just(""), st.text(max_size=40), st.text(_HOSTILE_CHARS, max_size=200),
                        st.text(min_size=100, max_size=5000))


@st.composite
def text_requests(draw) -> Case:
    message = moderation_pb2.ClassifyTextRequest(text=draw(texts), request_id=draw(request_ids),
                                                 explain=draw(st.booleans()))
    return Case("message", "ClassifyText", message.SerializeToString())


@st.composite
def batch_requests(draw) -> Case:
    batch = draw(st.one_of(st.lists(plain_texts, min_size=1, max_size=8), st.lists(texts, max_size=8), st.lists(st.text(max_size=3), min_size=60, max_size=200)))
    message = moderation_pb2.ClassifyTextBatchRequest(texts=batch, request_id=draw(request_ids),
                                                      explain=draw(st.booleans()))
    return Case("message", "ClassifyTextBatch", message.SerializeToString())


# --- audio ---------------------------------------------------------------------------------------
@st.composite
def mutated_audio(draw) -> bytes:
    """A seed file with its header (first 256 bytes) or body changed, cut, or spliced."""
    data = bytearray(draw(st.sampled_from(audio_seeds())))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "duplicate", "header_int"]))
        at = draw(st.integers(0, min(len(data) - 1, 255) if draw(st.booleans()) else len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "cut":
            data = data[:at] if draw(st.booleans()) else data[:at] + data[at + draw(st.integers(1, 64)):]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 512))]
        else:  # a size or rate field set to an extreme
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x00\x00\x80"]))
        if not data:
            break
    return bytes(data)


audio_bytes = st.one_of(mutated_audio(), st.sampled_from(audio_seeds()), st.binary(max_size=2048),
                        st.binary(min_size=1, max_size=64).map(lambda b: b"RIFF" + b), st.just(b""))


@st.composite
def voice_requests(draw) -> Case:
    message = moderation_pb2.ClassifyVoiceRequest(
        audio=draw(audio_bytes), format=draw(st.one_of(st.sampled_from(FORMAT_HINTS), st.text(max_size=20))),
        sample_rate_hz=draw(st.one_of(st.sampled_from(RATES), st.integers(-(2**31), 2**31 - 1))),
        language=draw(st.one_of(st.sampled_from(LANGUAGES), st.text(max_size=10))), request_id=draw(request_ids))
    return Case("message", "ClassifyVoice", message.SerializeToString())


@st.composite
def stream_requests(draw) -> Case:
    n = draw(st.integers(0, 12))
    chunks = []
    for i in range(n):
        pcm = draw(st.one_of(st.binary(max_size=64), st.binary(min_size=600, max_size=4000),
                             st.integers(0, 4000).map(lambda k: b"\x10\x27" * k)))
        rate = draw(st.sampled_from(RATES)) if i == 0 or draw(st.booleans()) else 0
        chunk = moderation_pb2.AudioChunk(pcm16=pcm, sample_rate_hz=rate,
                                          language=draw(st.sampled_from(LANGUAGES)) if i == 0 else "",
                                          request_id=draw(request_ids) if i == 0 else "")
        chunks.append(chunk.SerializeToString())
    return Case("message", "StreamVoice", tuple(chunks))


def info_requests() -> st.SearchStrategy[Case]:
    return st.just(Case("message", "GetModelInfo", moderation_pb2.GetModelInfoRequest().SerializeToString()))


# --- the other services on the public port ---------------------------------------------------------
service_names = st.one_of(st.sampled_from(["", "moderation.v1.Moderation", "grpc.health.v1.Health", "nope"]),
                          st.text(max_size=200), st.text(_HOSTILE_CHARS, max_size=50))


@st.composite
def health_requests(draw, method: str) -> Case:
    return Case("message", method, health_pb2.HealthCheckRequest(service=draw(service_names)).SerializeToString())


symbols = st.one_of(st.sampled_from(["moderation.v1.Moderation", "moderation.v1.Moderation.ClassifyText",
                                     "moderation.v1.Verdict", "grpc.health.v1.Health", "moderation.proto",
                                     "google/protobuf/descriptor.proto"]), st.text(max_size=100))


@st.composite
def reflection_requests(draw) -> Case:
    """A reflection session: up to 4 questions of every kind, about real and made-up names."""
    requests = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["list_services", "file_by_filename", "file_containing_symbol",
                                     "file_containing_extension", "all_extension_numbers_of_type"]))
        request = reflection_pb2.ServerReflectionRequest(host=draw(st.sampled_from(["", "localhost"])))
        if kind == "list_services":
            request.list_services = draw(st.text(max_size=10))
        elif kind == "file_containing_extension":
            request.file_containing_extension.containing_type = draw(symbols)
            request.file_containing_extension.extension_number = draw(st.integers(-(2**31), 2**31 - 1))
        else:
            setattr(request, kind, draw(symbols))
        requests.append(request.SerializeToString())
    return Case("message", "Reflection", tuple(requests))


# --- bytes that are not (quite) the request ------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def wire_messages(draw) -> bytes:
    """Protobuf wire data built field by field: known and unknown field numbers, any wire type,
    length-delimited payloads that are not UTF-8, and lengths that overrun the message."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 6))):
        number, wire_type = draw(st.integers(1, 12)), draw(st.sampled_from([0, 1, 2, 5, 3, 4, 6, 7]))
        out += _varint(number << 3 | wire_type)
        if wire_type == 0:
            out += _varint(draw(st.integers(-(2**63), 2**64 - 1)))
        elif wire_type in (1, 5):
            out += draw(st.binary(min_size=8 if wire_type == 1 else 4, max_size=8 if wire_type == 1 else 4))
        elif wire_type == 2:
            payload = draw(st.one_of(st.binary(max_size=64), st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80",
                                                                               b"ok\x80", b"\xf4\x90\x80\x80"])))
            out += _varint(len(payload) + draw(st.sampled_from([0, 0, 0, 1, 100, -1 if payload else 0]))) + payload
    return bytes(out)


@st.composite
def mutated_request_bytes(draw, requests) -> bytes:
    """A well-formed request's bytes with bits flipped, cut short, or bytes inserted."""
    payload = draw(requests).payload
    if isinstance(payload, tuple):  # a stream: one of its chunks
        payload = payload[0] if payload else b""
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        at = draw(st.integers(0, len(data) - 1))
        choice = draw(st.sampled_from(["flip", "truncate", "insert"]))
        if choice == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif choice == "truncate":
            data = data[:at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


MESSAGES = {"ClassifyText": text_requests(), "ClassifyTextBatch": batch_requests(),
            "ClassifyVoice": voice_requests(), "StreamVoice": stream_requests(), "GetModelInfo": info_requests(),
            "Health.Check": health_requests("Health.Check"), "Health.Watch": health_requests("Health.Watch"),
            "Reflection": reflection_requests()}
STREAMS = ("StreamVoice", "Reflection")  # methods whose payload is a tuple of messages


@st.composite
def byte_cases(draw) -> Case:
    method = draw(st.sampled_from(sorted(MESSAGES)))
    family = draw(st.sampled_from(["random_bytes", "wire", "mutated"]))
    if family == "random_bytes":
        body = draw(st.binary(max_size=512))
    elif family == "wire":
        body = draw(wire_messages())
    else:
        body = draw(mutated_request_bytes(MESSAGES[method]))
    if method in STREAMS:  # a malformed message first, or after good ones
        good = draw(MESSAGES[method]).payload
        at = draw(st.integers(0, len(good)))
        return Case(family, method, good[:at] + (body,) + good[at:])
    return Case(family, method, body)


def rpc_cases() -> st.SearchStrategy[Case]:
    """Every public RPC, well-formed and not, in one stream of cases."""
    return st.one_of(*MESSAGES.values(), *(byte_cases() for _ in range(5)))  # bytes: about 5 in 13
