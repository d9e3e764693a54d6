"""Test doubles that ship with callfleet: local fakes of real services (carriers' REST APIs
and signed callbacks), usable in-process by the tests and as processes by end-to-end runs."""
