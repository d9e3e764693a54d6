"""A call's recording, both sides, as callfleet saw them: the callee on the left channel
(every inbound frame, silence included), the assistant on the right, placed at the time its
audio went out and cut where a ``clear`` (barge-in) dropped it. 8 kHz, 16-bit stereo WAV.
"""

from __future__ import annotations

from callfleet.voice import audio

RATE = audio.CARRIER_RATE


class Recorder:
    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.callee = bytearray()
        self.assistant = bytearray()

    def _offset(self, at: float) -> int:
        return max(0, int((at - self.started_at) * RATE)) * 2

    def callee_audio(self, pcm: bytes) -> None:
        self.callee += pcm

    def assistant_audio(self, pcm: bytes, at: float) -> None:
        """Audio sent at ``at`` plays after what was sent before it (the carrier queues)."""
        start = max(len(self.assistant), self._offset(at))
        if start > len(self.assistant):
            self.assistant += bytes(start - len(self.assistant))
        self.assistant += pcm

    def cleared(self, at: float) -> None:
        """The carrier dropped what it had not played yet."""
        del self.assistant[self._offset(at):]

    @property
    def seconds(self) -> float:
        return max(len(self.callee), len(self.assistant)) / 2 / RATE

    def wav(self) -> bytes:
        n = max(len(self.callee), len(self.assistant))
        left = bytes(self.callee) + bytes(n - len(self.callee))
        right = bytes(self.assistant) + bytes(n - len(self.assistant))
        return audio.stereo_wav(left, right, RATE)
