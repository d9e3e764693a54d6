"""Deterministic post-call extraction, the fallback when no LLM is configured
(``extractor.extract``), by field type: ``numbers``, ``emails``, ``phones``, ``dates``,
``yesno``, ``options`` (select fields) and ``freetext``; ``binding`` ties an answer to the
fields the question asked about; ``text`` holds the shared text helpers."""
