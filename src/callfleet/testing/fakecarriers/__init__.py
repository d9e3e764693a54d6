"""Local fakes of Twilio's and Telnyx's REST APIs and signed callbacks (``network``), served
in-process (``serve``) or as their own process (``python -m callfleet.testing.fakecarriers``)."""
