"""Contact details: phone numbers (``phonenumbers``) and e-mail addresses, obfuscated or not.

Both detectors look at the message and, within the condition's context window, the sender's
own previous messages, so a number split across two messages is still found; a contact that
lies wholly in an earlier message is not reported again.

Phone: ``PhoneNumberMatcher`` at ``Leniency.VALID`` for each region of the condition
(``regions``, default US, GB, DE, FR, IN) on the folded text and on a de-obfuscated copy
(spelled digits "four one five" -> 415, a letter O among digits -> 0, separators between
digits removed). A number without ``+``/``00`` needs at least ten digits; numbers after words
like "order #" or "invoice", and trivial sequences (1234567890), are ignored.

E-mail: ordinary addresses, and obfuscated ones ("john dot doe at example dot com",
"john[at]example[dot]com", "john (at) example (dot) com", "john @ example . com") whose
top-level domain is a common one. A bare " at " with a plain-dot domain ("look at google.com")
only counts for well-known mail providers.
"""

from __future__ import annotations

import logging
from typing import Final

import phonenumbers
import regex

from moderation.detectors.base import DetectContext, Detector, with_context
from moderation.normalize import fold
from moderation.rules import Condition
from moderation.types import Detection, MessageView

log = logging.getLogger(__name__)

DEFAULT_REGIONS: Final = ("US", "GB", "DE", "FR", "IN")
MIN_NATIONAL_DIGITS: Final = 10
REGEX_TIMEOUT: Final = 0.05

_DIGIT_WORDS: Final = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_WORD_RE = regex.compile(r"\b(" + "|".join(_DIGIT_WORDS) + r")\b")
_LONE_O_RE = regex.compile(r"(?<=\d[ .\-]{0,3})o(?![a-z])|(?<![a-z])o(?=[ .\-]{0,3}\d)")
_DIGIT_I_RE = regex.compile(r"(?<=\d)[il](?=\d)")
_DIGIT_SEP_RE = regex.compile(r"(?<=\d)[ \t.\-()/_*]{1,3}(?=[\d(])")
_ORDER_RE = regex.compile(
    r"(?:order|invoice|ref|reference|tracking|ticket|case|account|acct|transaction|txn|sku"
    r"|isbn|serial|id|no|number|#)\W{0,3}$"
)


class PhoneDetector(Detector):
    """Detector for ``phone`` conditions; category ``phone``."""

    name = "phone"
    cost = 5
    reads: frozenset[str] = frozenset({"context"})
    categories: tuple[str, ...] = ("phone",)

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """One detection per distinct number (E.164) in this message, context included."""
        regions_param = condition.param("regions", DEFAULT_REGIONS)
        regions = regions_param if isinstance(regions_param, tuple) else DEFAULT_REGIONS
        text, own_start = with_context(message, ctx)
        found = find_phones(text, regions)
        if own_start:
            found = [n for n in found if n not in find_phones(text[: own_start - 1], regions)]
        return [Detection(self.name, "phone", 1.0, f"phone number {n}") for n in found]


def deobfuscate_digits(folded: str) -> str:
    """Spelled digits to digits, a letter O/I among digits fixed, separators between digits cut."""
    text: str = _DIGIT_WORD_RE.sub(lambda m: _DIGIT_WORDS[m.group(1)], folded)
    text = _LONE_O_RE.sub("0", text)
    text = _DIGIT_I_RE.sub("1", text)
    previous = None
    while previous != text:
        previous, text = text, _DIGIT_SEP_RE.sub("", text)
    return text


def find_phones(text: str, regions: tuple[str, ...] = DEFAULT_REGIONS) -> list[str]:
    """Distinct valid phone numbers in ``text`` as E.164 strings, in order of discovery."""
    folded = fold(text)
    candidates = [folded]
    plain = deobfuscate_digits(folded)
    if plain != folded:
        candidates.append(plain)
    out: list[str] = []
    for candidate in candidates:
        if sum(c.isdigit() for c in candidate) < 7:
            continue
        taken: list[tuple[int, int]] = []  # spans already read, by the earlier region
        for region in regions:
            for m in phonenumbers.PhoneNumberMatcher(
                candidate, region, leniency=phonenumbers.Leniency.VALID
            ):
                if any(s < m.end and m.start < e for s, e in taken) or not _plausible(candidate, m):
                    continue
                taken.append((m.start, m.end))
                e164 = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
                if e164 not in out:
                    out.append(e164)
    return out


def _plausible(text: str, m: phonenumbers.PhoneNumberMatch) -> bool:
    raw = str(m.raw_string)
    digits = "".join(c for c in raw if c.isdigit())
    international = raw.lstrip("(").startswith(("+", "00"))
    if not international and len(digits) < MIN_NATIONAL_DIGITS:
        return False
    if _ORDER_RE.search(text[max(0, m.start - 24) : m.start]):
        return False
    national = str(m.number.national_number)
    return not (len(set(national)) == 1 or national in "1234567890" or national in "9876543210")


# ---------------------------------------------------------------------- e-mail

#: Top-level domains an obfuscated address must end in (plain addresses may use any).
COMMON_TLDS: Final = frozenset(
    [
        "com",
        "net",
        "org",
        "edu",
        "gov",
        "mil",
        "int",
        "info",
        "biz",
        "io",
        "co",
        "me",
        "us",
        "uk",
        "de",
        "fr",
        "es",
        "it",
        "nl",
        "pt",
        "be",
        "ch",
        "at",
        "se",
        "no",
        "dk",
        "fi",
        "pl",
        "cz",
        "ru",
        "ua",
        "in",
        "cn",
        "jp",
        "kr",
        "au",
        "nz",
        "ca",
        "br",
        "mx",
        "ar",
        "cl",
        "za",
        "ie",
        "gr",
        "tr",
        "il",
        "xyz",
        "app",
        "dev",
        "online",
        "site",
        "email",
        "mail",
        "live",
        "tv",
        "cc",
        "eu",
        "asia",
    ]
)
#: Providers for which "name at gmail.com" (bare "at", plain dot) counts.
MAIL_PROVIDERS: Final = frozenset(
    [
        "gmail",
        "googlemail",
        "yahoo",
        "ymail",
        "hotmail",
        "outlook",
        "live",
        "msn",
        "icloud",
        "me",
        "mac",
        "aol",
        "proton",
        "protonmail",
        "pm",
        "gmx",
        "web",
        "mail",
        "yandex",
        "zoho",
        "fastmail",
        "tutanota",
        "t-online",
        "orange",
        "free",
        "laposte",
        "libero",
        "virgilio",
    ]
)

_LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL_RE = regex.compile(
    r"(?<![\w.%+-])([a-z0-9][a-z0-9._%+-]{0,63})@(" + _LABEL + r"(?:\." + _LABEL + r")*)"
    r"\.([a-z]{2,24})\b"
)
_OPEN, _CLOSE = r"[\[({<]", r"[\])}>]"
_AT = rf"(?P<at>\s*{_OPEN}\s*(?:at|@)\s*{_CLOSE}\s*|\s*@\s*|\s+at\s+)"
_DOT = rf"(?:\s*{_OPEN}\s*(?:dot|\.)\s*{_CLOSE}\s*|\s+dot\s+|\s+\.\s+|\.)"
_OBF_EMAIL_RE = regex.compile(
    rf"(?<![\w.%+-])(?P<local>{_LABEL}(?:{_DOT}{_LABEL}){{0,4}}){_AT}"
    rf"(?P<domain>{_LABEL}(?:{_DOT}{_LABEL}){{0,3}})(?P<lastdot>{_DOT})(?P<tld>[a-z]{{2,24}})\b"
)
_DOT_RE = regex.compile(_DOT)


class EmailDetector(Detector):
    """Detector for ``email`` conditions; category ``email``."""

    name = "email"
    cost = 3
    reads: frozenset[str] = frozenset({"context"})
    categories: tuple[str, ...] = ("email",)

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """One detection per distinct address in this message, context included."""
        text, own_start = with_context(message, ctx)
        found = find_emails(text)
        if own_start:
            found = [e for e in found if e not in find_emails(text[: own_start - 1])]
        return [Detection(self.name, "email", 1.0, f"email address {e}") for e in found]


def find_emails(text: str) -> list[str]:
    """Distinct e-mail addresses in ``text``, plain or obfuscated, normalised to a@b.tld."""
    folded = fold(text)
    out: list[str] = []
    try:
        for m in _PLAIN_EMAIL_RE.finditer(folded, timeout=REGEX_TIMEOUT):
            _add(out, f"{m.group(1)}@{m.group(2)}.{m.group(3)}")
        if not any(k in folded for k in ("@", " at ", "at]", "at)", "at}", "at>")):
            return out
        for m in _OBF_EMAIL_RE.finditer(folded, timeout=REGEX_TIMEOUT):
            tld = m.group("tld")
            if tld not in COMMON_TLDS:
                continue
            domain_raw = m.group("domain") + m.group("lastdot")
            domain = _DOT_RE.sub(".", m.group("domain"))
            bare_at = m.group("at").strip() == "at"
            plain_dots = all(d.group(0) == "." for d in _DOT_RE.finditer(domain_raw))
            if bare_at and plain_dots and domain.split(".")[0] not in MAIL_PROVIDERS:
                continue
            local = _DOT_RE.sub(".", m.group("local"))
            _add(out, f"{local}@{domain}.{tld}")
    except TimeoutError:
        log.warning("e-mail scan timed out on a %d-character text", len(text))
    return out


def _add(out: list[str], address: str) -> None:
    if address not in out:
        out.append(address)
