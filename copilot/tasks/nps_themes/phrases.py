"""Theme names without a model: the noun phrases customers use most in a theme and least in the others.

A phrase is a run of one to three content words ("QuickBooks sync", "mobile app", "customer service"): no stop
word, no opinion word (VADER's lexicon: "great", "love", "confusing"), no adverb, no past-tense verb, and a last word
that is used like a noun in the comments (after "the", "our", "with", ... rather than after "we", "to", "will").
Phrases are scored like c-TF-IDF keywords (how often the theme's sentences hold the phrase x how rare it is across
themes), a longer phrase replaces the words it covers when it is nearly as frequent, and the name is the best
phrase, joined with the second best ("Pricing and value") when the best is a single word. Names are whole words,
2-5 of them, at most ``MAX_NAME_CHARS`` characters, and distinct across the themes of a run.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

MAX_NAME_WORDS = 5
MAX_NAME_CHARS = 40
MAX_PHRASE_WORDS = 3
CANDIDATES = 8  # phrases kept per theme (the model namer sees them too)
NAMING_SAMPLE = 20_000  # distinct sentences the phrases are counted on
SECOND_PHRASE_SHARE = 0.3  # a single-word name gets the second phrase when it scores at least this share of the first
LONGER_PHRASE_SHARE = 0.5  # a phrase replaces the words it covers when it is this frequent relative to them

WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*", re.U)
TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*|\d+|[^\w\s]", re.U)
DETERMINERS = set(
    """the a an our my your their its his her this that these those no any every each some all another extra new
    old few several of with for on in from about per at by into after before during via through without like
    than across over under between""".split()
)
SUBJECTS = set("i we you they it he she to will would can could should must cannot won't don't doesn't didn't".split())
PREDICATE = set(
    """is was are were be been being so too very pretty quite not really always never more less most extremely
    super way rather fairly somewhat feels feel seems seem looks look""".split()
)
OBJECTS = set("our us my me it them your their his her the a an all up out off down away much".split())
# Frequent verbs that are never the topic of a theme ("Support takes days", "It saves us hours").
VERBS = set(
    """take takes took taken make gave give gives save saves add adds work works keep keeps kept go goes went gone
    move moves moved pick picks picked solve solves solved fix fixes fixed send sends sent help helps helped know
    knows knew feel feels felt seem seems look looks cut cuts get gets got give taking making saving adding working
    keeping going moving picking solving fixing sending helping breaks broke create creates created arrive arrives
    find finds found explain explains left leave leaves love loves loved hate hates try tries tried wish wishes
    wait waits waited answer answered""".split()
)
# Evaluative words VADER's lexicon lacks: a theme is what customers talk about, not how they feel about it.
OPINIONS = set(
    """intuitive seamless straightforward unreliable reliable overpriced pricey slow fast quick quickly smooth rushed
    steep clunky buggy laggy simple basic expensive cheap affordable responsive unresponsive robust flexible limited
    outdated modern handy nightmare disaster hassle headache mess breeze joy pain unusable solid rock perfect
    perfectly amazing awesome brilliant superb fantastic terrible horrible awful excellent decent okay fine tasty
    delicious yummy lovely nice cozy cosy rude attentive sluggish snappy speedy""".split()
)
ADJECTIVE_SUFFIXES = ("ive", "ful", "ous", "less", "able", "ible")
EXTRA_STOP = set(
    """really just like thing things lot lots bit way make makes made does did doing got get gets getting ve ll don
    didn doesn isn wasn aren won can't it's i'm we're they're that's there's let use used using able want wants need
    needs say said know think thought going went come came actually definitely overall pretty quite don't doesn't
    didn't isn't aren't wasn't won't i've we've you're i'd we'd it'd also still even ever yet though although
    however okay ok yes honestly frankly fair fairly bit times time day days week weeks month months year years once
    twice thrice today yesterday tomorrow lately recently soon again second seconds minute minutes hour hours
    everything anything something nothing everyone someone anyone people guys""".split()
)


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS | EXTRA_STOP | DETERMINERS | SUBJECTS | PREDICATE)


@lru_cache(maxsize=1)
def _opinion_words() -> frozenset[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return frozenset({word for word in SentimentIntensityAnalyzer().lexicon if word.isalpha()} | OPINIONS)


def _opinion(word: str) -> bool:
    """An evaluative word: VADER's lexicon, OPINIONS, or an adjective suffix ("intuitive", "useless")."""
    return word in _opinion_words() or word.endswith(ADJECTIVE_SUFFIXES)


@dataclass
class Usage:
    """How the words are used across every sentence of a run: evidence for nouns, verbs and adjectives."""

    noun: Counter = field(default_factory=Counter)  # after a determiner or preposition
    verb: Counter = field(default_factory=Counter)  # after a subject pronoun, "to" or a modal; before an object
    adjective: Counter = field(default_factory=Counter)  # after a copula or a degree word
    last: Counter = field(default_factory=Counter)  # last word of a run of content words
    inner: Counter = field(default_factory=Counter)  # inside a run, before its last word ("mobile" in "mobile app")
    forms: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # spellings not at the start

    def observe(self, tokens: list[str]) -> None:
        lowered = [token.lower() for token in tokens]
        for position, lower in enumerate(lowered):
            previous = lowered[position - 1] if position else None
            if previous in ("a", "an") and position > 1 and lowered[position - 2] in PREDICATE:
                self.adjective[lower] += 1  # "is a lifesaver", "was a nightmare": said of something, not a topic
            elif previous in DETERMINERS:
                self.noun[lower] += 1
            elif previous in SUBJECTS:
                self.verb[lower] += 1
            elif previous in PREDICATE:
                self.adjective[lower] += 1
            if position + 1 < len(lowered) and lowered[position + 1] in OBJECTS and previous not in DETERMINERS:
                self.verb[lower] += 1
            if position and WORD.fullmatch(tokens[position]):
                self.forms[lower][tokens[position]] += 1

    def observe_runs(self, tokens: list[str]) -> None:
        """Where content words sit in their runs (call after every sentence was observed)."""
        for run in self.runs(tokens):
            self.last[run[-1]] += 1
            self.inner.update(run[:-1])

    def runs(self, tokens: list[str]) -> list[list[str]]:
        runs, run = [], []
        for token in [*tokens, "."]:
            lower = token.lower()
            if self.content(lower):
                run.append(lower)
            elif run:
                runs.append(run)
                run = []
        return runs

    def content(self, word: str) -> bool:
        """A word that may be part of a name."""
        if len(word) < 2 or word in _stop_words() or word in VERBS or not WORD.fullmatch(word) or "'" in word:
            return False
        nounish = self.noun[word] >= max(self.verb[word], self.adjective[word], 1)
        if word in OPINIONS:
            return False
        if _opinion(word) or word.endswith("ly") or (word.endswith("ed") and len(word) > 4):
            return nounish  # "support", "value": opinion words that customers use as nouns
        return True

    def head(self, word: str) -> bool:
        """A word that may end a name: not used mostly like a verb, a predicate adjective or a modifier."""
        return self.noun[word] + 1 > self.verb[word] + self.adjective[word] and self.last[word] >= self.inner[word]

    def spelling(self, word: str) -> str:
        """The spelling customers use for a word mid-sentence ("QuickBooks", "iPhone"), else lower case."""
        forms = self.forms.get(word)
        return forms.most_common(1)[0][0] if forms else word


def sentence_phrases(tokens: list[str], usage: Usage) -> set[str]:
    """The candidate phrases of one tokenised sentence, lower case."""
    found: set[str] = set()
    for run in usage.runs(tokens):
        for end in range(len(run)):
            if usage.head(run[end]):
                found.update(
                    " ".join(run[start : end + 1]) for start in range(max(0, end - MAX_PHRASE_WORDS + 1), end + 1)
                )
    return found


@dataclass
class Phrase:
    text: str  # lower case
    score: float
    count: float  # weighted sentences of the theme that hold it


@dataclass
class ThemePhrases:
    """A theme's best phrases, and every two-word phrase its sentences hold (to join two words as customers do)."""

    ranked: list[Phrase]
    pairs: dict[str, float] = field(default_factory=dict)  # two-word phrase -> weighted sentences


def theme_phrases(
    texts: Sequence[str], themes: np.ndarray, weights: np.ndarray, k: int, *, seed: int = 0
) -> tuple[list[ThemePhrases], Usage]:
    """Ranked noun phrases per theme (c-TF-IDF over phrases), and the usage counts they were chosen with."""
    if len(texts) > NAMING_SAMPLE:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), NAMING_SAMPLE, replace=False))
        texts, themes, weights = [texts[i] for i in keep], themes[keep], weights[keep]
    tokenised = [TOKEN.findall(text) for text in texts]
    usage = Usage()
    for tokens in tokenised:
        usage.observe(tokens)
    for tokens in tokenised:
        usage.observe_runs(tokens)
    per_theme: list[Counter] = [Counter() for _ in range(k)]
    overall: Counter = Counter()
    sizes = np.bincount(themes, weights=weights, minlength=k)[:k]
    for tokens, theme, weight in zip(tokenised, themes, weights, strict=True):
        for phrase in sentence_phrases(tokens, usage):
            per_theme[theme][phrase] += float(weight)
            overall[phrase] += float(weight)
    average = float(sizes.mean()) if k else 1.0
    ranked = []
    for t in range(k):
        scored = [
            Phrase(p, c / max(sizes[t], 1.0) * math.log1p(average / overall[p]) * (1 + 0.15 * p.count(" ")), c)
            for p, c in per_theme[t].items()
            if c >= min(2.0, 0.5 * max(sizes[t], 1.0))
        ]
        scored.sort(key=lambda phrase: (-phrase.score, phrase.text))
        pairs = {p: c for p, c in per_theme[t].items() if p.count(" ") == 1}
        ranked.append(ThemePhrases(_covering(scored), pairs))
    return ranked, usage


def _covering(scored: list[Phrase]) -> list[Phrase]:
    """Best phrases first; a phrase inside a chosen one is left out, and a longer phrase nearly as frequent as a
    chosen one it contains takes its place ("app" -> "mobile app")."""
    chosen: list[Phrase] = []
    for phrase in scored:
        words = f" {phrase.text} "
        if any(words in f" {c.text} " for c in chosen):
            continue
        covered = [i for i, c in enumerate(chosen) if f" {c.text} " in words]
        if covered:
            if all(phrase.count >= LONGER_PHRASE_SHARE * chosen[i].count for i in covered):
                chosen[covered[0]] = Phrase(phrase.text, chosen[covered[0]].score, phrase.count)
                for i in reversed(covered[1:]):
                    del chosen[i]
            continue
        chosen.append(phrase)
        if len(chosen) >= CANDIDATES * 2:
            break
    return chosen[:CANDIDATES]


def spell(phrase: str, usage: Usage) -> str:
    return " ".join(usage.spelling(word) for word in phrase.split())


def capitalise(name: str) -> str:
    return name[:1].upper() + name[1:] if name else name


def fits(name: str) -> bool:
    words = name.split()
    return 1 <= len(words) <= MAX_NAME_WORDS and len(name) <= MAX_NAME_CHARS


def _related(a: str, b: str) -> bool:
    """Two phrases that share a word stem ("prices", "priced"): joining them says nothing more."""
    return any(x[:4] == y[:4] for x in a.split() for y in b.split())


def _joined(first: Phrase, second: Phrase, pairs: dict[str, float]) -> str:
    """ "battery" + "life" -> "battery life" when customers write it so ("quickbooks" + "syncs" -> "quickbooks sync":
    the same stem), else "battery and life"."""
    if " " not in second.text:
        stem = second.text[:4]
        for pair in sorted(pairs, key=lambda p: (-pairs[p], p)):
            a, b = pair.split()
            if (a == first.text and b[:4] == stem) or (b == first.text and a[:4] == stem):
                return pair
    return f"{first.text} and {second.text}"


def name_options(phrases: ThemePhrases, usage: Usage) -> list[str]:
    """Names for one theme, best first: the top phrase (a single word with the phrase customers write it in, or
    joined with the second phrase), then the others."""
    ranked = phrases.ranked
    options: list[str] = []
    for i, first in enumerate(ranked):
        words = first.text.split()
        if len(words) == 1:
            options += _pairs_with(first, phrases.pairs)
            seconds = [
                p
                for j, p in enumerate(ranked)
                if j != i and p.score >= SECOND_PHRASE_SHARE * first.score and not _related(p.text, first.text)
            ]
            options += [_joined(first, second, phrases.pairs) for second in seconds[:2]]
        if len(words) > 1 and not fits(first.text):  # too long for a name: its last words ("... configuration")
            options += [" ".join(words[i:]) for i in range(1, len(words)) if fits(" ".join(words[i:]))][:1]
            options.append(f"feedback on {words[-1]}")
        else:
            options.append(first.text if len(words) > 1 else f"feedback on {first.text}")
    return [capitalise(spell(o, usage)) for o in dict.fromkeys(options) if fits(o)]


def _pairs_with(word: Phrase, pairs: dict[str, float]) -> list[str]:
    """The theme's most frequent two-word phrase with this word, when customers mostly write the word in it."""
    found = [
        (c, p)
        for p, c in pairs.items()
        if word.text in p.split() and c >= LONGER_PHRASE_SHARE * word.count and not any(map(_opinion, p.split()))
    ]
    return [p for _, p in sorted(found, key=lambda item: (-item[0], item[1]))[:1]]


def quote_name(quote: str) -> str:
    """A theme with no phrase at all: the first words of its quote, whole words only."""
    words = WORD.findall(quote)[:MAX_NAME_WORDS]
    while words and len(" ".join(words)) > MAX_NAME_CHARS:
        words.pop()
    return capitalise(" ".join(words)) or "Other comments"


def name_themes(options: list[list[str]], sizes: Sequence[float], fallbacks: Sequence[str]) -> list[str]:
    """One distinct name per theme, biggest theme first: its best option that no bigger theme took."""
    names: list[str | None] = [None] * len(options)
    taken: set[str] = set()
    for t in sorted(range(len(options)), key=lambda t: (-sizes[t], t)):
        choice = next((o for o in options[t] if o.lower() not in taken), None)
        if choice is None:
            base = options[t][0] if options[t] else quote_name(fallbacks[t])
            numbered = (f"{base} ({n})" for n in range(2, len(options) + 2))
            choice = base if base.lower() not in taken else next(n for n in numbered if n.lower() not in taken)
        taken.add(choice.lower())
        names[t] = choice
    return [name or "" for name in names]
