"""The base of callfleet's own speech-to-text services: one speech segment at a time (the
VAD cuts them), as raw 16-bit PCM at the pipeline's rate, reporting time to first byte."""

from __future__ import annotations

from pipecat.services.stt_service import SegmentedSTTService


class PcmSegmentSTT(SegmentedSTTService):
    @property
    def wants_wav_segments(self) -> bool:
        return False

    def can_generate_metrics(self) -> bool:
        return True
