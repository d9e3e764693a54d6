"""Telephone audio helpers with the standard library only: G.711 µ-law, resampling, loudness
and WAV files. Used by the carrier media client (which must run without the voice extra)
and by the pipeline's own bookkeeping.

Telephone audio on a media stream is µ-law, 8 kHz, mono, sent in 20 ms frames of 160 bytes.
"""

from __future__ import annotations

import io
import warnings
import wave

with warnings.catch_warnings():  # deprecated in 3.11, still the fastest G.711 in the stdlib
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

CARRIER_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = CARRIER_RATE * FRAME_MS // 1000  # µ-law: one byte per sample
ULAW_SILENCE = b"\xff"  # µ-law code for 0
SILENT_RMS = 60  # 16-bit RMS below this is silence (noise floor of a quiet line)


def ulaw_to_pcm(data: bytes) -> bytes:
    """µ-law bytes to 16-bit little-endian PCM (same rate)."""
    return audioop.ulaw2lin(data, 2)


def pcm_to_ulaw(data: bytes) -> bytes:
    """16-bit PCM to µ-law bytes (same rate)."""
    return audioop.lin2ulaw(data, 2)


def resample(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """16-bit mono PCM from one rate to another (linear interpolation, for speech)."""
    if rate_in == rate_out or not pcm:
        return pcm
    out, _ = audioop.ratecv(pcm, 2, 1, rate_in, rate_out, None)
    return bytes(out)


def resample_stream(pcm: bytes, rate_in: int, rate_out: int, state: object
                    ) -> tuple[bytes, object]:
    """:func:`resample` for consecutive chunks of one stream (``state`` carries over)."""
    out, state = audioop.ratecv(pcm, 2, 1, rate_in, rate_out, state)
    return bytes(out), state


def rms(pcm: bytes) -> int:
    return int(audioop.rms(pcm, 2)) if pcm else 0


def is_silent_ulaw(data: bytes) -> bool:
    if not data.strip(b"\xff\x7f"):  # digital silence (both µ-law zeros): no decoding
        return True
    return rms(ulaw_to_pcm(data)) < SILENT_RMS


def silence_ulaw(ms: int) -> bytes:
    return ULAW_SILENCE * (CARRIER_RATE * ms // 1000)


def wav_bytes(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """A 16-bit WAV file holding ``pcm`` (interleaved when ``channels`` is 2)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def stereo_wav(left: bytes, right: bytes, rate: int) -> bytes:
    """A 16-bit stereo WAV from two mono tracks of the same length."""
    both = audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)
    return wav_bytes(both, rate, 2)


def read_wav(data: bytes) -> tuple[bytes, int]:
    """(mono 16-bit PCM, rate) from a WAV file's bytes (stereo is mixed down)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    if width != 2:
        frames = audioop.lin2lin(frames, width, 2)
    if channels == 2:
        frames = audioop.tomono(frames, 2, 0.5, 0.5)
    return frames, rate


def frames_of(ulaw: bytes) -> list[bytes]:
    """Split µ-law audio into 20 ms frames (the last one padded with silence)."""
    out = [ulaw[i:i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + ULAW_SILENCE * (FRAME_BYTES - len(out[-1]))
    return out
