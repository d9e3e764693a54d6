"""Speech from espeak-ng (``espeakng-loader`` wheel, GPL-3.0: the ``voice-gpl`` extra only).

Rule-based and fast (a sentence in a few milliseconds), so the simulated callee, the tests
and the benchmark use it for the callee's voice. Loaded through ctypes on first use; never
imported by callfleet's core.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache

from callfleet.voice import audio

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class EspeakUnavailable(RuntimeError):
    """espeak-ng is not installed (``pip install 'callfleet[voice-gpl]'``)."""


class _Engine:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EspeakUnavailable(
                "espeak-ng is not installed; install callfleet[voice-gpl]") from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.rate <= 0:
            raise EspeakUnavailable("espeak-ng failed to initialise")
        self.lib.espeak_SetVoiceByName(b"en-us")
        self.lock = threading.Lock()
        self.chunks: list[bytes] = []

        def collect(wav: ctypes.Array, n: int, _events: int) -> int:  # type: ignore[type-arg]
            if n > 0:
                self.chunks.append(ctypes.string_at(wav, n * 2))
            return 0

        self.callback = _CALLBACK(collect)  # kept referenced: espeak holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)

    def synth(self, text: str, words_per_minute: int) -> bytes:
        with self.lock:
            self.chunks = []
            self.lib.espeak_SetParameter(1, words_per_minute, 0)  # espeakRATE
            data = text.encode() + b"\0"
            self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None,
                                  None)
            self.lib.espeak_Synchronize()
            return b"".join(self.chunks)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def available() -> bool:
    try:
        engine()
    except (EspeakUnavailable, OSError):
        return False
    return True


def speak_pcm(text: str, rate: int = 16000, words_per_minute: int = 175) -> bytes:
    """16-bit mono PCM at ``rate`` saying ``text``, leading and trailing silence trimmed."""
    e = engine()
    return audio.resample(trim(e.synth(text, words_per_minute)), e.rate, rate)


@lru_cache(maxsize=512)
def speak_ulaw(text: str, words_per_minute: int = 175) -> bytes:
    """8 kHz µ-law saying ``text``: what a caller's phone sends (cached per text)."""
    return audio.pcm_to_ulaw(speak_pcm(text, audio.CARRIER_RATE, words_per_minute))


def trim(pcm: bytes, window: int = 160) -> bytes:
    """Drop leading and trailing silence (so "end of speech" is the last audible sample)."""
    step = window * 2
    start, end = 0, len(pcm)
    while start < end and audio.rms(pcm[start:start + step]) < audio.SILENT_RMS:
        start += step
    while end > start and audio.rms(pcm[max(start, end - step):end]) < audio.SILENT_RMS:
        end -= step
    return pcm[start:end]
