"""callvault: call recording for hosted telephony."""
