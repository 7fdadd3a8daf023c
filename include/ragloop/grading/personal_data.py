"""Personal data found by validators, not shapes: a candidate is reported only when the
maintained library that knows its format says it is valid.

- Phone numbers: Google's libphonenumber (the `phonenumbers` package), international numbers
  (+14155552671, +44 20 7946 0958), `tel:` links, and national numbers read in each of
  `NATIONAL_REGIONS`, each kept only when the library calls it a valid number.
- IBANs: `stdnum.iban` (country, length and the ISO 7064 mod-97 check).
- Payment cards: 13-19 digits with any one separator (space, -, ., _) or none, an issuer prefix
  and the Luhn check (`stdnum.luhn`).
- US social security numbers: `stdnum.us.ssn` (area, group and serial rules; the numbers
  printed on sample cards are refused by it).
- Emails, internationalised domains included (`jane@bücher.de`, `xn--…`), outside the domains
  reserved for examples (RFC 2606 and 6761).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

# National numbers (no +country) are read as numbers of these regions, each validated by the
# library; an international number needs none.
NATIONAL_REGIONS = ("US", "GB", "DE", "FR")


@dataclass(frozen=True)
class PersonalData:
    kind: str  # email | phone | iban | card_number | ssn
    value: str  # the matched text (never written to a report: see `masked`)

    @property
    def masked(self) -> str:
        return self.value[:4] + "…" if len(self.value) > 6 else "…"


EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)\b", re.UNICODE)
EXAMPLE_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)
# Country code, check digits, then the account: grouped by spaces or dashes as banks print them.
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}[ -]?\d{2}(?:[ -]?[A-Za-z0-9]){11,30}\b")
CARD_CANDIDATE = re.compile(r"(?<![\w.-])\d(?:[ ._-]?\d){12,18}(?![\w-]|\.\d)")
SSN_CANDIDATE = re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])")
# Card issuers' prefixes (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro):
# a Luhn-valid number outside them is an id, not a card.
CARD_ISSUER = re.compile(r"^(?:4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9]|[3-6]\d|7[01])\d{13}|2720\d{12}|3[47]\d{13}|"
                         r"6(?:011|5\d\d|4[4-9]\d)\d{12,15}|3(?:0[0-5]|[68]\d)\d{11}|35(?:2[89]|[3-8]\d)\d{12,15}|62\d{14,17}|"
                         r"(?:50|5[6-9]|6\d)\d{10,17})$")  # fmt: skip
TEL_LINK = re.compile(r"\btel:(\+?[\d().\s-]{7,20}\d)", re.I)


def _phones(text: str) -> list[PersonalData]:
    found = []
    for match in TEL_LINK.finditer(text):
        try:
            number = phonenumbers.parse(match.group(1), NATIONAL_REGIONS[0])
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.append(PersonalData("phone", match.group()))
    # VALID: the library's own leniency that wants a valid number for the region and the
    # grouping it prints; dates, versions, IPs and ports are not numbers it accepts.
    hits: dict[int, str] = {}
    for region in NATIONAL_REGIONS:
        for hit in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            hits.setdefault(hit.start, hit.raw_string)
    for raw in hits.values():
        digits = sum(c.isdigit() for c in raw)
        # A national number needs its grouping or its area code in parentheses: ten bare digits
        # are as often an id or a timestamp.
        if not raw.lstrip().startswith("+") and not re.search(r"[\s().-]", raw):
            continue
        if digits < 9:
            continue
        found.append(PersonalData("phone", raw))
    return found


def _ibans(text: str) -> list[PersonalData]:
    found = []
    for match in IBAN_CANDIDATE.finditer(text):
        # The candidate may run into the next word ("... 0130 00 by"): the longest prefix of whole
        # groups that passes the check is the IBAN.
        groups = re.split(r"(?<=[A-Za-z0-9])(?=[ -])", match.group())
        for end in range(len(groups), 0, -1):
            candidate = "".join(groups[:end])
            compact = re.sub(r"[ -]", "", candidate).upper()
            if len(compact) >= 15 and iban.is_valid(compact):
                found.append(PersonalData("iban", candidate))
                break
    return found


def _cards(text: str) -> list[PersonalData]:
    found = []
    for match in CARD_CANDIDATE.finditer(text):
        raw = match.group()
        separators = set(re.sub(r"\d", "", raw))
        if len(separators) > 1:
            continue
        digits = re.sub(r"\D", "", raw)
        if separators and re.fullmatch(r"\d{1,3}(?:[ .,]\d{3})+", raw):
            continue  # 100 000 000 and 1.000.000: thousands, not a card
        if CARD_ISSUER.match(digits) and luhn.is_valid(digits):
            found.append(PersonalData("card_number", raw))
    return found


def _ssns(text: str) -> list[PersonalData]:
    return [PersonalData("ssn", m.group()) for m in SSN_CANDIDATE.finditer(text) if ssn.is_valid(m.group().replace(" ", "-"))]


def _emails(text: str) -> list[PersonalData]:
    found = []
    for match in EMAIL.finditer(text):
        domain = match.group().rsplit("@", 1)[1]
        if not EXAMPLE_DOMAINS.search(domain):
            found.append(PersonalData("email", match.group()))
    return found


def find_personal_data(text: str) -> list[PersonalData]:
    """Every validated piece of personal data in the (normalised) text, in kind order."""
    return [*_emails(text), *_phones(text), *_ibans(text), *_cards(text), *_ssns(text)]
