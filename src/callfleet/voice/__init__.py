"""Live voice: real-time spoken calls on a pipecat pipeline (docs/voice.md).

The carrier connects a media WebSocket per call (``voice.routes``, Twilio Media Streams
framing first, ``voice.framing``); ``voice.session`` runs one pipeline per call
(``voice.pipeline``): speech-to-text, the assistant's brain (the deterministic policy or an
OpenAI-compatible LLM with tools), text-to-speech, with barge-in, DTMF, silence handling and
a hang-up only after the carrier confirms the goodbye has played (``voice.control``).

Everything that imports pipecat lives behind the optional extra ``callfleet[voice]``; the
modules that do not (``control``, ``framing``'s pure parts, ``tokens``, ``settings``,
``mediaclient``) are importable in a plain install, which keeps callfleet's text simulation
working without it.
"""
