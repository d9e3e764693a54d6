"""Twilio: the adapter (``adapter``), its signed callbacks (``routes``) and what they mean
(``events``)."""
