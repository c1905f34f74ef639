"""kaskad: a self-hostable verification-code and SMS gateway."""

__version__ = "0.1.0"
