"""The thin client: a library (``TritonDetector``) and a CLI (``python -m client``)."""
from .detector import ServerUnavailable, TritonDetector

__all__ = ['TritonDetector', 'ServerUnavailable']
