"""The Telegram Gateway channel: the API client and the Channel built on it."""
