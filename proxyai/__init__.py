"""proxyAI: speaker-attributed transcripts from recorded conversations."""

__version__ = "0.1.0"
