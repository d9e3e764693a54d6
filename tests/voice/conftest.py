"""Voice tests load models only from installed wheels: any attempt to reach a model hub
fails instead of downloading (faster-whisper, Piper, Silero)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
