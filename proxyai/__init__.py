"""proxyAI: speaker-attributed transcripts from recorded conversations."""

__version__ = "13.7.6.1"
