"""The deterministic tone rewriter: what a small model cannot do reliably, done by rules that never invent a fact.

Every tone starts from the same clean-up (rude wording put neutrally where a neutral wording exists, the rest of the
insults and profanity dropped with articles agreeing again, shouting and runs of !!! calmed), then:
  friendly     blunt refusals softened ("We can't" -> "Unfortunately, we can't"), orders turned into requests,
               a thank-you opener and an offer to help at the end when the text has none
  empathetic   as friendly, with an apology first where the reply speaks of trouble (not trouble it only supposes:
               "If you encounter any issues"), else an acknowledgement that the request matters
  formal       contractions and chat slang written out (cuz, asap, tho, gonna, thx, pls, u ...), plain verbs made
               formal ("let me help you" -> "allow me to assist you"), greetings and sign-offs made formal,
               exclamation marks calmed, an offer of further assistance at the end when the text has none
  concise      filler, hedges and wordy phrases cut ("in order to" -> "to", "due to the fact that" -> "because"),
               and sentences that only offer help ("I'm here to help you with that.") when they carry no fact
  expand       a courteous opener and closing added around the text (no new facts)
  fix_grammar  sentence case, "i" -> "I", spacing around punctuation, common misspellings, a final full stop
  neutral      only the clean-up, keeping the text's own casing
Additions are plain courtesy in the text's language (English, Spanish, German, French); numbers, names, links and
quoted lines are never touched, so the fact guard holds by construction.
"""

from __future__ import annotations

import re

from copilot.tasks.thread import NAME_LINE

INSULT = (
    r"(idiot|moron|imbecile|cretin|fool|clown|jerk|loser|bozo|hick|cunt|jackass|dumbass|asshole|bastard|retard|"
    r"scumbag|scum|pig|dick|prick|douche(?:bag)?|s[ch]muck|twat|dimwit|nitwit|halfwit|dipshit|bitche?|whore|slut|"
    r"nigg(?:a|ah|er)|faggot)"
)
INSULT_LEAD = r"(?:(?:such|a|an|the|one|total|complete|absolute|real|bunch|load|pile|piece|of)\s+)*"
COPULA = (
    r"\b(am|is|are|was|were|be|been|being|youre|you're|theyre|they're|hes|he's|shes|she's|thats|that's|it's|"
    r"sounds|seems|looks)\s+((?:so|really|very|pretty|just|totally|completely|utterly|plain)\s+)?"
)


def _person(match: re.Match) -> str:
    """An insult noun as "person", its article agreeing when nothing stands between them ("an idiot" -> "a person")."""
    article, adjective = match.group(1), match.group(2)
    if not adjective and article.lower() == "an":
        article = _same_case(article, "a")
    return f"{article} {adjective}person"


# Rude wording with a neutral one, tried in order before what is left of the rude words is dropped: a predicate
# keeps its sentence whole ("you are an idiot" -> "you are wrong"), a noun keeps its place ("these fools" ->
# "these people"), a phrase keeps its meaning ("doesn't give a damn" -> "doesn't care").
NEUTRAL_WORDING = [
    (
        r"\b(give|gives|gave) (an?|ah) (damn|shit|fuck|crap|rat'?s ass)\b",
        lambda m: {"give": "care", "gives": "cares", "gave": "cared"}[m.group(1).lower()],
    ),
    (r"\bthe (fuck|hell|heck|shit)\s+(?=(out|outta|up|off|away|down|on)\b)", ""),
    (
        r"\b(his|her|your|yo|my|their|our) (?:(?:lazy|fat|dumb|stupid|sorry|punk) )?ass\b",
        lambda m: {"his": "him", "her": "her", "your": "you", "yo": "you", "my": "me", "their": "them", "our": "us"}[
            m.group(1).lower()
        ],
    ),
    (
        r"\b(say|said|says|do|did|does|know|knew|knows|see|saw|sees|get|got|gets|give|gave|gives) (no )?shit\b",
        lambda m: f"{m.group(1)} {'nothing' if m.group(2) else 'anything'}",
    ),
    (r",?\s*\band (shit|stuff like that|crap)\b", ""),
    (r"\b(this|that) (shit|crap)\b", r"\1"),
    (r"\b(my|your|his|her|our|their|some|no) (shit|crap)\b", r"\1 stuff"),
    (r"\b(holy|hell) (shit|fuck|crap|hell)\b", ""),
    (r"\bhell (yeah|yes|no)\b", r"\1"),
    (r"\b(what|who|where|why|how) (the|in the) (hell|fuck|heck)\b", r"\1"),
    (r"\b(going|goes|gone|went) to hell\b", r"\1 downhill"),
    (r"\bshut (the (hell|fuck) )?up\b", "please stop"),
    (r"\b(kick|kicks|kicked|kickin|kicking)'? ass\b", "doing well"),
    (r"\ba pain in the (ass|butt|neck)\b", "a hassle"),
    (r"\bscrew(s|ed|ing)? up\b", r"mess\1 up"),
    (r"\b(fuck|piss|bugger|sod) off\b", "go away"),
    (r"\bpissed( off)?\b", "upset"),
    (r"\bfull of (shit|crap|bs)\b", "wrong"),
    (r"\b(sucks|sucked)\b", lambda m: "is bad" if m.group(1).lower() == "sucks" else "was bad"),
    (COPULA + INSULT_LEAD + INSULT + r"s?\b", r"\1 wrong"),
    (COPULA + r"(stupid|dumb|idiotic|moronic|retarded|brainless)\b", r"\1 \2wrong"),
    (COPULA + r"(pathetic|crappy|shitty|lousy|garbage|trash|rubbish)\b", r"\1 \2bad"),
    (COPULA + INSULT_LEAD + r"(crap|shit|bullshit|garbage|trash|rubbish)\b", r"\1 not good"),
    (COPULA + r"useless\b", r"\1 \2not helpful"),
    (COPULA + r"incompetent\b", r"\1 \2not competent"),
    (COPULA + r"ridiculous\b", r"\1 \2unreasonable"),
    (r"\bbullshit\b", "nonsense"),
    (r"\blook(s|ed|ing)?\s+(?:like\s+)?(?:an?\s+)?(?:\w+\s+)?" + INSULT + r"s?\b", r"look\1 bad"),
    (r",?\s*\byou\s+(?:\w+\s+)?" + INSULT + r"s?\b", ""),
    (INSULT + r"s\b", "people"),
    (r"\b(a|an|the|this|that|some|any|every|one)\s+((?:\w+\s+)?)" + INSULT + r"\b", _person),
]

RUDE = re.compile(
    r"\b(stupid|idiotic|moronic|dumb|brainless|crap(py)?|shit(ty)?|damn(ed)?|hell|f+u*c*k+(ing|in|ed|er|e|s)?|fuc+in|"
    r"fukk?in|wtf|stfu|suck(ed|ing)?|useless|pathetic|ridiculous|incompetent|garbage|bullsh[i*]?t|arsed?|trash|"
    r"lousy|ass|"
    r"screw(ed)?|freaking|frigging|bloody|retarded|" + INSULT[1:-1] + r")\b",
    re.I,
)
ARTICLE_BEFORE_RUDE = re.compile(rf"\b(?P<article>a|an)\s+(?:{RUDE.pattern}[\s,]+(?:and\s+)?)+(?P<next>\w)", re.I)
CONTRACTIONS = {
    "don't": "do not",
    "can't": "cannot",
    "won't": "will not",
    "isn't": "is not",
    "aren't": "are not",
    "didn't": "did not",
    "doesn't": "does not",
    "wasn't": "was not",
    "weren't": "were not",
    "haven't": "have not",
    "hasn't": "has not",
    "couldn't": "could not",
    "wouldn't": "would not",
    "shouldn't": "should not",
    "I'm": "I am",
    "I've": "I have",
    "I'll": "I will",
    "I'd": "I would",
    "we're": "we are",
    "we'll": "we will",
    "we've": "we have",
    "you're": "you are",
    "you'll": "you will",
    "you've": "you have",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "let's": "let us",
    "they're": "they are",
    "what's": "what is",
    "here's": "here is",
    "where's": "where is",
    "they'll": "they will",
    "they've": "they have",
    "we'd": "we would",
    "you'd": "you would",
    "it'll": "it will",
}
SLANG = {
    "cuz": "because",
    "coz": "because",
    "cos": "because",
    "asap": "as soon as possible",
    "tho": "though",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "have to",
    "kinda": "somewhat",
    "sorta": "somewhat",
    "lemme": "let me",
    "dunno": "do not know",
    "yeah": "yes",
    "yep": "yes",
    "yup": "yes",
    "nope": "no",
    "thx": "thank you",
    "thanx": "thank you",
    "ty": "thank you",
    "pls": "please",
    "plz": "please",
    "u": "you",
    "ur": "your",
    "r": "are",
    "btw": "by the way",
    "fyi": "for your information",
    "imo": "in my view",
    "info": "information",
    "w/": "with",
    "w/o": "without",
    "tmrw": "tomorrow",
    "tbh": "to be honest",
    "ok": "all right",
    "okay": "all right",
    "hey": "Hello",
    "hiya": "Hello",
    "cheers": "Kind regards",
    "awesome": "excellent",
    "stuff": "items",
    "guys": "everyone",
    "folks": "everyone",
}
FILLER = re.compile(
    r"\b(just|really|actually|basically|literally|very|quite|simply|honestly|kind of|sort of|totally|"
    r"definitely|certainly|absolutely|easily|simple|specific)\s+",
    re.I,
)
# "..., and that's final": a clause that says nothing new and closes the door; cut by concise, friendly and formal.
FINALITY = r",?\s*\b(?:and )?that(?:'?s| is) final\b"
WORDY = [
    (r"\bI (just )?wanted to (let you know|reach out and let you know|inform you) that\s+", ""),
    (r"\bI am writing to (let you know|inform you) that\s+", ""),
    (r"\b(Please note|Note) that\s+", ""),
    (r"\bI hope (this|that) (email|message) finds you well\.?\s*", ""),
    (r"\bin order to\b", "to"),
    (r"\bdue to the fact that\b", "because"),
    (r"\bat this point in time\b", "now"),
    (r"\bat the present time\b", "now"),
    (r"\bin the event that\b", "if"),
    (r"\bfor the purpose of\b", "for"),
    (r"\bwith regard to\b", "about"),
    (r"\bin spite of the fact that\b", "although"),
    (r"\ba large number of\b", "many"),
    (r"\bis able to\b", "can"),
    (r"\bare able to\b", "can"),
    (r"\bmake a decision\b", "decide"),
    (r"\bgive you an update\b", "update you"),
    (FINALITY, ""),
]
# Sentences that only say the writer is willing to help: cut by "concise" when they carry no fact.
COURTESY_ONLY = re.compile(
    r"^(?:(?:I'?m|I am|We'?re|We are) (?:here|happy|glad|more than happy|delighted) to (?:help|assist|guide)|"
    r"(?:I'?ll|I will|We'?ll|We will) (?:help|assist|guide) you|Let me lend you a hand|"
    r"(?:Let|Allow) (?:me|us) (?:to )?(?:help|assist|guide|provide you with (?:guidance|assistance|the necessary))|"
    r"Don'?t worry|No worries|(?:I )?hope this helps|(?:Please )?(?:feel free|don'?t hesitate) to|"
    r"If you have any (?:other |further |more )?questions|Certainly|Sure|Of course|Absolutely|No problem)"
    r"\b[^.!?]*[.!?:]*$",
    re.I,
)
FACT_LIKE = re.compile(r"\d|\{\{|[\"@]|(?<!\w)'|'(?!\w)|https?:|\b[A-Z][a-z]+ [A-Z]")
SENTENCE_START = r"(?:^|(?<=[.!?:]\s))"
FORMAL_WORDING = [
    (r"\blet me (?!know\b)", "allow me to "),
    (  # "help you with it" -> "assist you with it"; "help you find it" and "the help you need" stay
        r"(?<!\bthe )(?<!\bany )(?<!\bmore )\b(help|helping) (you|us)(?= (?:with|in|through)\b|[.,;!?]|$)",
        lambda m: ("assist " if m.group(1).lower() == "help" else "assisting ") + m.group(2),
    ),
    (r"\bto help(?= (?:with|in|through)\b|[.,;!?]|$)", "to assist"),
    (r"\bwant to\b", "wish to"),
    (r"\b(buy|bought)\b", lambda m: "purchase" if m.group(1).lower() == "buy" else "purchased"),
    (r"\bget back to (you|us)\b", r"respond to \1"),
    (r"\bget in touch with\b", "contact"),
    (r"\btell (you|us|me)\b", r"inform \1"),
    (r"\bright away\b", "immediately"),
    (r"\bmake sure\b", "ensure"),
    (r"\bgo to\b", "proceed to"),
    (r"\bstart by\b", "begin by"),
    (r"\bshow up\b", "appear"),
    (r"\b(I am|we are) sorry\b(?! to (?:hear|learn|see|read)\b)", lambda m: f"{m.group(1).split()[0]} apologize"),
    (r"^Sorry\b(?! to (?:hear|learn|see|read)\b)", "We apologize"),
    (r"^Sure\b", "Certainly"),
    (r"\bthanks\b", "thank you"),
    (FINALITY, ""),
    (
        SENTENCE_START + r"(?:Read|See|Check) (?:the|our) (terms|policy|docs|documentation|FAQ)\b",
        r"Please refer to our \1",
    ),
]
# Orders become requests only where they open a sentence: "what you need to do" and "I don't know" stay as they are.
BLUNT = [
    (FINALITY, ""),
    (r"\bRead the (terms|policy|docs|documentation|FAQ)\b\.?", r"You can find the details in our \1."),
    (SENTENCE_START + r"You (must|have to|need to) ", "Please "),
    (SENTENCE_START + r"Do not\b", "Please do not"),
    (SENTENCE_START + r"Don't\b", "Please don't"),
    (r"^(No)[.!]\s+", ""),
    (r"\bThat's not our (problem|fault)\b\.?", "I understand this is frustrating."),
    (r"\bas I (already )?said\b,?\s*", ""),
    (r"\bobviously\b,?\s*", ""),
]
REFUSAL = re.compile(r"(^|(?<=[.!?]\s))(We|I) (can't|cannot|can not|won't|will not|are unable to|am unable to)\b")
# A bare order at a sentence start ("Send me the invoice."), asked as a request by friendly and empathetic.
ORDER = re.compile(
    r"(^|(?<=[.!?]\s))(Send|Update|Fix|Check|Click|Go|Open|Reply|Call|Enter|Restart|Clear|Reset|Try|Contact|Upload|"
    r"Pay|Add|Remove|Delete|Give|Tell|Email|Forward|Confirm|Attach|Install|Reinstall|Refresh|Stop|Wait|Use|Provide)\b"
)
LIST_ITEM = re.compile(r"^\s*(\d+[.)]|[-*\u2022])\s")
MISSPELLINGS = {
    "recieve": "receive",
    "recieved": "received",
    "definately": "definitely",
    "seperate": "separate",
    "occured": "occurred",
    "untill": "until",
    "wich": "which",
    "accomodate": "accommodate",
    "adress": "address",
    "tommorow": "tomorrow",
    "tommorrow": "tomorrow",
    "alot": "a lot",
    "thier": "their",
    "becuase": "because",
    "beleive": "believe",
    "goverment": "government",
    "begining": "beginning",
    "wierd": "weird",
    "existant": "existent",
    "refered": "referred",
    "sucessful": "successful",
    "succesful": "successful",
}
OPENERS = {
    "friendly": {
        "en": "Thanks for reaching out!",
        "es": "¡Gracias por escribirnos!",
        "de": "Danke für Ihre Nachricht!",
        "fr": "Merci de nous avoir écrit !",
    },
    "empathetic": {
        "en": "I'm sorry for the trouble this has caused, and I understand how frustrating it is.",
        "es": "Siento mucho las molestias que esto le ha causado.",
        "de": "Es tut mir leid, dass Ihnen das Unannehmlichkeiten bereitet hat.",
        "fr": "Je suis désolé pour la gêne occasionnée.",
    },
    "expand": {
        "en": "Thank you for getting in touch with us about this.",
        "es": "Gracias por ponerse en contacto con nosotros.",
        "de": "Vielen Dank, dass Sie sich an uns gewandt haben.",
        "fr": "Merci de nous avoir contactés à ce sujet.",
    },
}
CLOSERS = {
    "friendly": {
        "en": "Let me know if there's anything else I can do.",
        "es": "Dígame si puedo ayudarle en algo más.",
        "de": "Melden Sie sich gern, wenn ich noch etwas tun kann.",
        "fr": "N'hésitez pas si je peux faire autre chose.",
    },
    "expand": {
        "en": "If you have any other questions, just reply to this message and we will be happy to help.",
        "es": "Si tiene cualquier otra pregunta, responda a este mensaje y le ayudaremos con gusto.",
        "de": "Wenn Sie weitere Fragen haben, antworten Sie einfach auf diese Nachricht.",
        "fr": "Si vous avez d'autres questions, répondez simplement à ce message.",
    },
}
CLOSERS["empathetic"] = CLOSERS["friendly"]
CLOSERS["formal"] = {
    "en": "Should you require further assistance, please let us know.",
    "es": "Quedamos a su disposición para cualquier otra consulta.",
    "de": "Für weitere Fragen stehen wir Ihnen gern zur Verfügung.",
    "fr": "Nous restons à votre disposition pour toute autre question.",
}
ALREADY_THANKS = re.compile(r"\b(thank|thanks|gracias|danke|merci)\b", re.I)
ALREADY_SORRY = re.compile(r"\b(sorry|apolog|understand how|lo siento|disculp|tut mir leid|désolé|pardon)", re.I)
ALREADY_UNDERSTANDS = re.compile(r"\bI (understand|acknowledge|can see|realise|realize)\b", re.I)
APOLOGY_ONLY = "I'm sorry for the trouble this has caused."  # the English empathetic opener, minus the "I understand"
# A reply to a plain request ("I want to add an item to my order") has nothing to apologise for: an acknowledgement.
SPEAKS_OF_TROUBLE = re.compile(
    r"\b(?:(?:frustrat|inconvenien|mistak|apolog|disappoint|urgen|difficult|fail|complain|concern)\w*|"
    r"issues?|problems?|errors?|trouble|unable|can'?t|cannot|not working|broken|wrong|delay(?:ed|s)?|late|lost|"
    r"locked|twice|outage|(?:is|are|was|went) down|sorry|resolved|fixed|restored|elevated|slow|incident|reset|"
    r"unfortunately)\b",
    re.I,
)
# What a reply only supposes ("If you encounter any difficulties, ...", "any technical issues", "No problem!").
SUPPOSED_TROUBLE = re.compile(
    r"^(?:if|should|in case|unless)\b.*|\bany (?:\w+ )?(?:issues?|difficult\w*|problems?|concerns?|errors?|trouble)\b|"
    r"\bno problem\b",
    re.I,
)
ACKNOWLEDGEMENT = "I know how much it matters to get this sorted, and I'm glad to help."
# A bare interjection that would follow an apology ("I'm sorry for the trouble. Certainly! ...") is dropped.
LEADING_INTERJECTION = re.compile(r"^(?:certainly|sure|of course|absolutely|no problem|no worries)[!.,]\s+", re.I)
ALREADY_OFFER = re.compile(
    r"\b(let (me|us) know|any (other )?questions|happy to help|anything else|reply to|"
    r"otra (pregunta|consulta)|algo más|su disposición|no dude|weitere(n)? fragen|zur verfügung|noch etwas|"
    r"autres? questions?|votre disposition|n'hésitez)",
    re.I,
)
GREETING = re.compile(
    r"^(hi|hello|hey|dear|hola|hallo|bonjour|good (morning|afternoon|evening))\b[^\n,!.]*[,!.]?\s*", re.I
)
# A casual sign-off, which formal writes "Kind regards,".
SIGN_OFF = re.compile(r"^(cheers|thanks|thx|ta|best|later|bye)[,!.]?\s*$", re.I)
# Any sign-off line: an added closer goes before it and the name lines under it.
CLOSING_LINE = re.compile(
    r"^(?:cheers|thanks|thank you|thx|best|(?:best |kind )?regards|sincerely|bye|saludos|cordialement|viele grüße)"
    r"[,!.]?$",
    re.I,
)


def rewrite_by_rules(text: str, tone: str, language: str = "en") -> str:
    """Rewrite ``text`` in ``tone`` without inventing anything; quoted lines (``> ...``) stay as they are."""
    lines = text.split("\n")
    body = [_line(line, tone) if not line.lstrip().startswith(">") else line for line in lines]
    rewritten = "\n".join(body).strip()
    if tone in OPENERS or tone in CLOSERS:
        framed = _frame(rewritten, tone, language)
        rewritten = "\n".join(_tidy(line) if not line.lstrip().startswith(">") else line for line in framed.split("\n"))
    return rewritten


def _line(line: str, tone: str) -> str:
    if tone != "fix_grammar":
        line = _calm(line)
    if tone in ("friendly", "empathetic"):
        line = _soften(line)
    elif tone == "formal":
        line = _formal(line)
    elif tone == "concise":
        line = _concise(line)
    if tone == "neutral":
        return _tidy(line, recase=False)
    return _tidy(_grammar(line))


def _calm(line: str) -> str:
    for pattern, replacement in NEUTRAL_WORDING:
        line = re.sub(pattern, replacement, line, flags=re.I)
    line = _drop_rude_words(line)
    line = re.sub(r"!{2,}", "!", re.sub(r"\?{2,}", "?", line))
    return re.sub(r"\b([A-Z]{4,})\b", lambda m: m.group(1).capitalize() if m.group(1).isalpha() else m.group(1), line)


def _drop_rude_words(line: str) -> str:
    """The rude words left out, and "a"/"an" agreeing again with the word that now follows it ("an idiotic idea")."""
    line = ARTICLE_BEFORE_RUDE.sub(
        lambda m: _same_case(m["article"], "an" if m["next"].lower() in "aeiou" else "a") + " " + m["next"], line
    )
    return RUDE.sub("", line)


def _replace_words(line: str, mapping: dict[str, str]) -> str:
    for short, long in mapping.items():
        pattern = rf"(?<![\w'/-]){re.escape(short)}(?![\w'/-])"
        line = re.sub(pattern, lambda m, long=long: _same_case(m.group(0), long), line, flags=re.I)
    return line


def _same_case(found: str, replacement: str) -> str:
    return replacement[0].upper() + replacement[1:] if found[0].isupper() else replacement


def _soften(line: str) -> str:
    for pattern, replacement in BLUNT:
        line = re.sub(pattern, replacement, line, flags=re.I | re.M)
    if not LIST_ITEM.match(line):  # steps of a how-to stay instructions
        line = ORDER.sub(lambda m: f"{m.group(1)}Please {m.group(2).lower()}", line)
    return REFUSAL.sub(
        lambda m: f"{m.group(1)}Unfortunately, {m.group(2).lower() if m.group(2) == 'We' else 'I'} {m.group(3)}", line
    )


def _formal(line: str) -> str:
    if re.match(r"^(hi|hey|hiya)\s+[A-Z]\w*,", line, re.I):
        line = re.sub(r"^(hi|hey|hiya)\b", "Dear", line, flags=re.I)
    line = SIGN_OFF.sub("Kind regards,", line)
    line = re.sub(r"\bI\s+(gonna|wanna)\b", lambda m: "I am going to" if m.group(1) == "gonna" else "I want to", line)
    line = re.sub(r"\b(we|you|they)\s+gonna\b", r"\1 are going to", line, flags=re.I)
    line = _replace_words(line, CONTRACTIONS)
    line = _replace_words(line, SLANG)
    for pattern, replacement in FORMAL_WORDING:
        line = re.sub(
            pattern,
            lambda m, r=replacement: _same_case(m.group(0), m.expand(r) if isinstance(r, str) else r(m)),
            line,
            flags=re.I,
        )
    line = re.sub(r"!(?=\s|$)", ".", line)
    stripped = line.strip()
    if not stripped or NAME_LINE.match(stripped) or _ends_sentence(stripped) or stripped.endswith(","):
        return line
    return line.rstrip() + "."


def _concise(line: str) -> str:
    for pattern, replacement in WORDY:
        line = re.sub(pattern, replacement, line, flags=re.I)
    line = FILLER.sub("", line)
    kept = [s for s in re.split(r"(?<=[.!?])\s+", line) if not (COURTESY_ONLY.match(s) and not FACT_LIKE.search(s))]
    return " ".join(kept) if kept else line


def _grammar(line: str) -> str:
    line = _replace_words(line, MISSPELLINGS)
    line = re.sub(r"(?<![\w'])i(?![\w'])", "I", line)
    return re.sub(r"(?<=\w)([,;])(?=[A-Za-z])", r"\1 ", line)


def _tidy(line: str, recase: bool = True) -> str:
    stripped = line.strip()
    if not stripped:
        return ""
    line = re.sub(r"\s{2,}", " ", stripped)
    line = re.sub(r"\s+([,.!?;:])(?![\w])", r"\1", line)
    line = re.sub(r"([,;:])\1+", r"\1", line)
    line = re.sub(r"\.{2}(?!\.)", ".", line)
    if recase:
        line = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), line)
    return re.sub(r"^(?:[,;]+|[!?.:]+(?=\s))\s*", "", line).strip()


def _empathetic_opener(text: str) -> str:
    """An apology where the reply speaks of something gone wrong (without a second "I understand" when it has one),
    else an acknowledgement: a reply to a plain request has nothing to apologise for."""
    prose = "\n".join(line for line in text.split("\n") if not LIST_ITEM.match(line))  # not steps or policy terms
    sentences = re.split(r"(?<=[.!?])\s+|\n+", prose)
    if not any(SPEAKS_OF_TROUBLE.search(SUPPOSED_TROUBLE.sub("", sentence.strip())) for sentence in sentences):
        return ACKNOWLEDGEMENT
    return APOLOGY_ONLY if ALREADY_UNDERSTANDS.search(text) else OPENERS["empathetic"]["en"]


def _frame(text: str, tone: str, language: str) -> str:
    """Add the tone's opener and closer (once, only where the text has none), after any greeting line."""
    lang = language if language in OPENERS.get(tone, CLOSERS.get(tone, {})) else "en"
    opener = OPENERS.get(tone, {}).get(lang)
    if tone == "empathetic" and lang == "en":
        opener = _empathetic_opener(text)
    closer = CLOSERS.get(tone, {}).get(lang)
    greeting_match = GREETING.match(text)
    greeting = greeting_match.group(0).strip() if greeting_match else ""
    rest = text[greeting_match.end() :] if greeting_match else text
    if (
        opener
        and not (tone == "empathetic" and ALREADY_SORRY.search(rest))
        and not (tone == "friendly" and ALREADY_THANKS.search(rest[:80]))
    ):
        rest = _open_with(rest, opener)
    if closer and not ALREADY_OFFER.search(rest):
        rest = _add_closer(rest, closer)
    return f"{greeting}\n\n{rest}" if greeting and "\n" in text[: len(greeting) + 2] else f"{greeting} {rest}".strip()


def _add_closer(text: str, closer: str) -> str:
    """The closer after the body, on its own paragraph when the body has several lines, and before any sign-off."""
    body, sign_off = _split_sign_off(text.rstrip())
    if "\n" in body:
        body = f"{body}\n\n{closer}"
    else:
        body = f"{body}{'' if not body or _ends_sentence(body) else '.'} {closer}".strip()
    return f"{body}\n\n{sign_off}" if sign_off else body


def _split_sign_off(text: str) -> tuple[str, str]:
    """The text before its sign-off ("Cheers," and the name lines under it), and the sign-off."""
    lines = text.split("\n")
    for index in range(len(lines) - 1, max(0, len(lines) - 4), -1):
        names = [line.strip() for line in lines[index + 1 :] if line.strip()]
        if CLOSING_LINE.match(lines[index].strip()) and all(NAME_LINE.match(name) for name in names):
            return "\n".join(lines[:index]).rstrip(), "\n".join(lines[index:])
    return text, ""


def _ends_sentence(text: str) -> bool:
    return bool(re.search(r"[.!?:][\"')\]]*$", text))


def _open_with(text: str, opener: str) -> str:
    """The opener before the text, after its "Certainly!" when the opener is an acknowledgement (one voice: "Certainly!
    I know how much it matters ..."), else in its place ("I'm sorry for the trouble. Certainly!" reads as two)."""
    interjection = LEADING_INTERJECTION.match(text)
    rest = text[interjection.end() :] if interjection else text
    if interjection and opener == ACKNOWLEDGEMENT:
        return f"{interjection.group(0).strip()} {opener} {rest}".strip()
    return f"{opener} {rest}".strip()
