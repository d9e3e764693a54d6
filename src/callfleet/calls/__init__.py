"""Call records: the row, its timeline (``timeline``), its wire form (``views``) and the calls
API. What happens when a call is placed, answered and ended is ``dialer/outcomes.py``."""
