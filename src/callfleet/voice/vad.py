"""Silero voice activity detection at a phone call's cost.

pipecat's ``SileroVADAnalyzer`` loads its own ONNX session per call (tens of milliseconds
of blocking work when a call starts, and a session's memory per call) and runs each 32 ms
window on a thread of its own (a thread hand-off 30 times a second per call). Here one
session serves every call of the process (the model's recurrent state stays per call) and
a window is scored on the event loop, which is cheaper than the hand-off for a model this
small. A window of line silence (16-bit RMS under ``GATE_RMS``, about -55 dBFS) is not
run through the model: the callee is silent most of a call (bench/voice.py,
docs/decisions/0030). The loudness meter still sees every window (skipping it too delayed
the detection of short words such as "Yes.").
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import onnxruntime
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from callfleet.voice.audio import rms

GATE_RMS = 60


@lru_cache(maxsize=1)
def _session() -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                        sess_options=opts)


def _model() -> SileroOnnxModel:
    model = SileroOnnxModel.__new__(SileroOnnxModel)  # the shared session, fresh state
    model.session = _session()
    model.sample_rates = [8000, 16000]
    model.reset_states()
    return model


class SharedSileroVAD(SileroVADAnalyzer):
    def __init__(self, *, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=None, params=params)
        self._model = _model()
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        return self._run_analyzer(buffer)

    def voice_confidence(self, buffer: bytes) -> Any:
        if rms(buffer) < GATE_RMS:
            return 0.0
        return super().voice_confidence(buffer)
