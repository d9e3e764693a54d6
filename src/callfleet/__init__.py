"""callfleet: self-hostable outbound AI phone campaigns with a built-in CRM."""

__version__ = "0.1.0"
