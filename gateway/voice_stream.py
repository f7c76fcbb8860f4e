"""StreamVoice's input side: chunks read with limits -> 16 kHz samples -> utterances (asr.utterances).

A live stream holds a handler thread and a stream slot for as long as it lasts, so what a client
may do with it is bounded (issue 15, part 5):
- chunks hold at least `stream_min_chunk_ms` of audio (the last excepted), so a client cannot
  make the gateway handle a message per sample;
- audio may not arrive faster than `stream_max_speed` x real time, counted from the first chunk,
  with `stream_burst_s` of slack: live voice comes at 1x, a file pushed through at full speed
  is not what this RPC is for (ClassifyVoice is);
- a stream that sends nothing for `stream_idle_timeout_s`, or that has been open for
  `stream_max_wall_s`, ends with DEADLINE_EXCEEDED and gives its slot back.
Waiting for the next chunk with a timeout needs the request iterator to be read in a thread of
its own (gRPC's iterator blocks without one); a small bounded queue between the two keeps gRPC's
flow control working while the handler is busy with Whisper.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from asr.audio import MAX_PCM_SAMPLE_RATE_HZ, MIN_PCM_SAMPLE_RATE_HZ
from gateway.errors import BackendTimeout, InvalidInput
from gateway.settings import Settings

READ_AHEAD_CHUNKS = 8  # chunks read while the handler works; past this, gRPC's flow control holds the client
_POLL_S = 0.1  # how often a reader blocked on a full queue checks that the stream is still wanted
_END = object()


@dataclass(frozen=True)
class StreamLimits:
    min_chunk_s: float
    max_speed: float
    burst_s: float
    idle_timeout_s: float
    max_wall_s: float
    max_chunk_bytes: int
    max_stream_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(settings.stream_min_chunk_ms / 1e3, settings.stream_max_speed, settings.stream_burst_s,
                   settings.stream_idle_timeout_s, settings.stream_max_wall_s, settings.max_chunk_bytes,
                   settings.max_stream_s)


class StreamExpired(BackendTimeout):
    """The stream went idle or outlived its wall-clock cap (DEADLINE_EXCEEDED)."""


class ChunkReader:
    """The request iterator read in its own thread, so that waiting for a chunk can time out.

    Yields (chunk, arrival time on time.monotonic). Use as a context manager: leaving it tells
    the reader thread to stop (it ends for good when gRPC ends the call).
    """

    def __init__(self, chunks, idle_timeout_s: float, max_wall_s: float):
        self._chunks = chunks
        self._idle_timeout_s = idle_timeout_s
        self._max_wall_s = max_wall_s
        self._queue: queue.Queue = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="stream-reader", daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> ChunkReader:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()

    def __iter__(self) -> Iterator[tuple[object, float]]:
        while True:
            left_s = self._max_wall_s - (time.monotonic() - self.started)
            if left_s <= 0:
                raise StreamExpired(f"stream closed: it has been open for {self._max_wall_s:g} s, the limit")
            try:
                item = self._queue.get(timeout=min(self._idle_timeout_s, left_s))
            except queue.Empty:
                if time.monotonic() - self.started >= self._max_wall_s:
                    continue  # reported at the top of the loop
                raise StreamExpired(f"stream closed: no audio for {self._idle_timeout_s:g} s "
                                    f"(stream_idle_timeout_s); send silence while the player is quiet") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _read(self) -> None:
        try:
            for chunk in self._chunks:
                if not self._put((chunk, time.monotonic())):
                    return
            self._put(_END)
        except Exception as err:  # the caller cancelled (grpc.RpcError): handed to the handler thread
            self._put(err)

    def _put(self, item) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False


class StreamInput:
    """One StreamVoice call's chunks, checked, decoded and cut into utterances.

    After the first chunk, `language` holds the language it named ("" for the default).
    """

    def __init__(self, voice, limits: StreamLimits, segmenter, log):
        """voice: gateway.voice.VoicePipeline (check_language, pcm16_stream); segmenter: asr.utterances.UtteranceSegmenter;
        log: the call's gateway.boundary.RequestLog."""
        self.voice, self.limits, self.segmenter, self.log = voice, limits, segmenter, log
        self.rate, self.language = 0, ""
        self._decoder = None  # asr.Pcm16Stream, made from the first chunk's rate
        self._first_arrival: float | None = None
        self._chunks = 0
        self._audio_s = 0.0
        self._short_chunk = False  # a chunk under the minimum was seen: it must have been the last

    def utterances(self, chunks) -> Iterator:
        """asr Utterances, each as soon as it ends; the last ones when the client closes its side."""
        with ChunkReader(chunks, self.limits.idle_timeout_s, self.limits.max_wall_s) as reader:
            for chunk, arrival in reader:
                samples = self._accept(chunk, arrival)
                if samples is not None:
                    yield from self.segmenter.feed(samples)
        if self._decoder is not None:
            yield from self.segmenter.feed(self._decoder.flush())
        yield from self.segmenter.finish()

    def _accept(self, chunk, arrival: float):
        """Checks one chunk against the limits; its samples, or None for an empty first chunk."""
        self._check_header(chunk)
        first = self._chunks == 0
        self._chunks += 1
        if self._short_chunk:
            raise InvalidInput(f"a chunk held less than {self.limits.min_chunk_s * 1e3:g} ms of audio; only the "
                               "last chunk of a stream may be shorter")
        size = len(chunk.pcm16)
        if size > self.limits.max_chunk_bytes:
            raise InvalidInput(f"chunk is {size} bytes; the limit is {self.limits.max_chunk_bytes}")
        if size % 2:
            raise InvalidInput(f"a PCM16 chunk must hold whole samples; got {size} bytes")
        if not size and first:
            return None  # a first chunk with only the stream's settings
        duration_s = size / 2 / self.rate
        self._short_chunk = duration_s < self.limits.min_chunk_s
        self._check_pace(duration_s, arrival)
        self.log.size, self.log.chars = self.log.size + 1, self.log.chars + size
        return self._decoder.decode(chunk.pcm16) if size else None

    def _check_header(self, chunk) -> None:
        if not self.rate:
            if chunk.sample_rate_hz <= 0:
                raise InvalidInput("the first chunk must carry sample_rate_hz")
            if not MIN_PCM_SAMPLE_RATE_HZ <= chunk.sample_rate_hz <= MAX_PCM_SAMPLE_RATE_HZ:
                raise InvalidInput(f"sample_rate_hz {chunk.sample_rate_hz} is outside "
                                   f"{MIN_PCM_SAMPLE_RATE_HZ}-{MAX_PCM_SAMPLE_RATE_HZ} Hz")
            self.voice.check_language(chunk.language)
            self._decoder = self.voice.pcm16_stream(chunk.sample_rate_hz)
            self.rate, self.language = chunk.sample_rate_hz, chunk.language
            self.log.name(chunk.request_id)  # checked: length and printable (gateway.inputs)
        elif chunk.sample_rate_hz not in (0, self.rate):
            raise InvalidInput(f"sample_rate_hz changed from {self.rate} to {chunk.sample_rate_hz} mid-stream")

    def _check_pace(self, duration_s: float, arrival: float) -> None:
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._audio_s += duration_s
        if self._audio_s > self.limits.max_stream_s:
            raise InvalidInput(f"stream is over its limit of {self.limits.max_stream_s:.0f} s of audio")
        elapsed_s = arrival - self._first_arrival
        if self._audio_s > self.limits.burst_s + self.limits.max_speed * elapsed_s:
            raise InvalidInput(
                f"audio arrives faster than {self.limits.max_speed:g}x real time ({self._audio_s:.1f} s of audio "
                f"in {elapsed_s:.1f} s); stream live audio as it is spoken, or send a clip to ClassifyVoice")
