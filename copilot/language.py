"""Which language a customer writes in: py3langid (langid.py's model, shipped inside the wheel; nothing downloads).

The detector is restricted to the languages a workspace serves (default: English, Spanish, German, French,
Portuguese, Italian, Dutch), which is what makes it reliable on short support messages. A text too short or too
mixed to call is reported with its low confidence; callers then fall back to the contact's language or English.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from pydantic import BaseModel

DEFAULT_LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl")
MIN_CONFIDENCE = 0.8
_WORDS = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


class Language(BaseModel):
    code: str
    confidence: float
    method: str = "py3langid"


class LanguageDetector:
    """A langid model limited to a set of languages; thread-safe."""

    def __init__(self, languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.languages = languages
        self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._model.set_languages(list(languages))
        self._lock = threading.Lock()

    def detect(self, text: str, default: str = "en") -> Language:
        """The language of ``text``; ``default`` with confidence 0 when there are too few words to tell."""
        words = _WORDS.findall(text or "")
        if len(words) < 2:
            return Language(code=default, confidence=0.0, method="default")
        with self._lock:
            code, confidence = self._model.classify(" ".join(words))
        return Language(code=code, confidence=round(float(confidence), 4))


@lru_cache(maxsize=4)
def detector(languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> LanguageDetector:
    """The process-wide detector for a language set (loading the model takes about two seconds)."""
    return LanguageDetector(languages)


def detect_language(text: str, default: str = "en", languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> Language:
    return detector(languages).detect(text, default)
