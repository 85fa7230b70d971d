"""A conversation as tasks see it: typed messages with ids, plus sentence and clipping helpers."""

from __future__ import annotations

import re

from pydantic import BaseModel

from copilot.guards import signature_block
from copilot.store import Repo
from copilot.store.models import Ticket

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9¿¡\"'(])|\n+")
GREETING = re.compile(
    r"^(hi|hello|hey|dear|hola|hallo|bonjour|guten tag|good (morning|afternoon|evening))\b"
    r"(\s+[\w@'’-]+){0,3}\s*[,!.]?\s*$",
    re.I,
)
LOOSE_GREETING = re.compile(r"^(hi|hello|hey|dear)( there| team| all| guys| folks)?(\s+@\w+)?\s*[,!.]?\s+(?=\S)", re.I)
TWEET_SIGN_OFF = re.compile(r"\s+(?:[-~^]\s?[A-Z][A-Za-z]{0,12}|\^[A-Z]{1,4})\s*$")  # "... - Dani", "... ^JK"
LEADING_GREETING = re.compile(
    r"^(hi|hello|hey|dear|hola|hallo|bonjour|good (morning|afternoon|evening))\b[^,.!?\n]{0,30}[,!]\s+(?=\S)", re.I
)
LEADING_MENTIONS = re.compile(r"^(@\w+[\s,:]*)+")  # social replies start with @handles
SIGN_OFF = re.compile(r"^(thanks|thank you|cheers|best|regards|kind regards|best regards)\W*$", re.I)


class ThreadMessage(BaseModel):
    id: int
    author_kind: str  # customer | agent | internal_note
    author: str | None = None
    text: str


class Thread(BaseModel):
    subject: str = ""
    channel: str = "email"
    status: str = "open"
    messages: list[ThreadMessage]

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.messages]

    @property
    def customer_wrote_last(self) -> bool:
        visible = [m for m in self.messages if m.author_kind != "internal_note"]
        return bool(visible) and visible[-1].author_kind == "customer"

    def texts(self) -> list[str]:
        return [self.subject, *(m.text for m in self.messages)]

    def customer_text(self) -> str:
        """Everything the customer wrote in the thread, in order."""
        return " ".join(m.text for m in self.messages if m.author_kind == "customer")


def load_thread(repo: Repo, ticket: Ticket) -> Thread:
    return Thread(
        subject=ticket.subject,
        channel=ticket.channel.value,
        status=ticket.status.value,
        messages=[
            ThreadMessage(id=m.id, author_kind=m.author_kind.value, author=m.author, text=m.body)
            for m in ticket.messages
        ],
    )


QUOTE_HEADER = re.compile(r"^(on .{4,120} wrote:|-{2,} ?original message ?-{2,}|from: .+)$", re.I)
NAME_LINE = re.compile(r"^[A-Z][\w'’-]+(?: [A-Z][\w'’.-]+){0,3}$")  # "Ana Sato", "Ledgerly Support"


def body_without_signature(text: str) -> str:
    """The message as its author wrote it now: no signature, no quoted earlier mail, no trailing name lines."""
    signature = signature_block(text)
    body = text[: text.rfind(signature)] if signature else text
    kept: list[str] = []
    for line in body.strip().split("\n"):
        if QUOTE_HEADER.match(line.strip()):
            break  # the rest is the quoted earlier message
        if not line.lstrip().startswith(">"):
            kept.append(line)
    while kept and (not kept[-1].strip() or NAME_LINE.match(kept[-1].strip())):
        if len(kept) > 1 and kept[-1].strip() and kept[-2].strip() and not NAME_LINE.match(kept[-2].strip()):
            break  # a capitalised last line right under text is part of the text, not a signature
        kept.pop()
    return "\n".join(kept).strip() or text.strip()


def sentences(text: str) -> list[str]:
    """Content sentences of a message: no greeting line, no sign-off, no signature."""
    out = []
    for piece in SENTENCE_END.split(body_without_signature(text)):
        piece = LEADING_GREETING.sub("", LEADING_MENTIONS.sub("", piece.strip()))
        piece = TWEET_SIGN_OFF.sub("", piece)
        if GREETING.match(piece) or SIGN_OFF.match(piece):
            continue
        piece = LEADING_MENTIONS.sub("", LOOSE_GREETING.sub("", piece))
        if piece[:1].islower():
            piece = piece[0].upper() + piece[1:]
        if len(piece) < 3 or (NAME_LINE.match(piece) and " " not in piece):  # a lone name: a sign-off
            continue
        out.append(piece)
    return out


def clip(text: str, limit: int, *, one_line: bool = False) -> str:
    """``text`` in at most ``limit`` characters, cut at a word and ending in "…" when it is longer; ``one_line``
    first collapses every run of whitespace (newlines too) into one space."""
    if one_line:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
