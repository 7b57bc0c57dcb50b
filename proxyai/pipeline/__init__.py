"""The speech pipeline: audio → voice chunks → Whisper ‖ diarization → speaker-attributed words.

Pure library code: no web framework, task queue or database imports.
"""
