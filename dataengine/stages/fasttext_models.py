"""Classifier models (fastText, or an encoder head: `classifiers/encoder.py`), loaded once per process.

Ray pickles stages into each actor; the model loads there on first use, not in the driver.
"""

from __future__ import annotations

import threading
from pathlib import Path

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def require_model_file(path: str, config_key: str) -> None:
    """Fail at set-up, before any document is read, naming the config key to fix."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path} (set {config_key})")


def load_model(path: str):
    with _LOCK:
        if path not in _MODELS:
            from dataengine.classifiers.encoder import EncoderClassifier, is_encoder_head

            if is_encoder_head(path):
                _MODELS[path] = EncoderClassifier.load(path)
            else:
                import fasttext

                _MODELS[path] = fasttext.load_model(path)
        return _MODELS[path]
