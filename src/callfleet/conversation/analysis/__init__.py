"""Post-call analysis: summary, success evaluation and info extraction of an answered call,
written back to the contact exactly once (SPEC 5).

- ``queue``: the call that just ended gets an ``analysis`` job (same transaction);
- ``findings``: what the call says, from the LLM (JSON schema) or the deterministic extractor;
- ``apply``: writing the findings into the contact and onto the call, with their events;
- ``revert``: putting back what an analysis wrote (``POST /api/calls/{id}/analysis/revert``);
- ``worker``: the loop that claims jobs, computes findings with no transaction open and
  writes them in one fenced transaction.

``call.analysis``::

    {"summary": str, "success_evaluation": true | false | null, "success_reason": str,
     "extracted_data": {key: {"value", "previous", "target", "changed", "confidence"?}},
     "method": "llm" | "deterministic" | "deterministic_fallback", "analyzed_at": iso, ...}
"""
