"""The SMS channel: SMPP connectors to upstream SMSCs and the channel built on them."""
