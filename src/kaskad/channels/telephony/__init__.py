"""Telephony over SIP: voice-code calls, flash calls and incoming-call verification.

What the rest of kaskad uses (everything else is internal):
- settings.SipEndpointSettings / TrunkSettings: the config models (KASKAD_SIP_LISTEN, trunks).
- endpoint.Telephony: builds and runs the one SIP endpoint, a SipCaller and (when the trunk
  wants it) a Registration per trunk, and answers INVITEs to the DIDs with 486 after calling
  `on_incoming(caller, callee, call_id) -> bool`; `on_rejected(RejectedCall)` hears the rest.
- calls.SipCaller.voice_call(number, code, lang) / flash_call(number, code) -> CallResult,
  whose `.outcome` is the cascade's Outcome.
- channel.VoiceChannel / FlashCallChannel: the same calls behind the Channel interface.

Layering inside: transports.py (aiosipua's UDP/TCP, two fixes) < transactions.py (RFC 3261 §17:
retransmissions, the non-2xx ACK) < stack.py (routing) < dialog.py, calls.py, incoming.py,
registration.py. Pure helpers: numbers.py, digest.py, rtp.py (and its pacing clock), sdp.py,
prompts.py (recordings made by scripts/make_prompts).
"""
