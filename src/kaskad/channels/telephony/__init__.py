"""Telephony over SIP: voice-code calls, flash calls and incoming-call verification."""
