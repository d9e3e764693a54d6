"""Telnyx Call Control v2: the adapter (``adapter``), its signed webhooks (``routes``) and
what they mean (``events``)."""
