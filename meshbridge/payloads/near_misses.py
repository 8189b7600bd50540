"""Payloads that look like a format at a glance and are not: the corpus a new sniffer is checked
against (with every installed type's ``example``) by :func:`meshbridge.testing.check_sniffer`.

Each is what a sender might really put on an ``auto`` route; none holds patient data. Add one
when a sniffer is found stealing something new.
"""

from __future__ import annotations

NEAR_MISSES: dict[str, bytes] = {
    # prose with commas on every line: a sniffer that calls any comma-bearing text CSV claims it
    "letter with commas": (
        b"Dear Dr Patel,\n"
        b"Thank you for seeing Mrs Example, who is 82, lives alone, and has had two falls.\n"
        b"Her daughter, who visits daily, reports confusion, poor appetite, and low mood.\n"
        b"Yours sincerely,\n"
        b"Dr A. Demo, Ward 7, Example General Hospital\n"
    ),
    # one address per line, the same number of commas in each: still a list a person wrote
    "addresses, one a line": (
        b"1 High Street, Leeds, LS1 1AA\n2 Park Road, York, YO1 7HH\n3 Mill Lane, Hull, HU1 2AB\n"
    ),
    # angle brackets and markup-ish words, not at the start
    "note with angle brackets": (
        b"Potassium <3.5 mmol/L on 2 readings; repeat in 1 week.\n"
        b"See <https://example.org/guide> and the <b>bold</b> advice in the leaflet.\n"
    ),
    # opens with angle brackets that no XML document can start with
    "text opening with a tag": b"<<URGENT>> please call the ward about bed 4 before 5pm.\n",
    # EDIFACT words, plus signs and apostrophes in prose
    "edifact-looking prose": (
        b"Re: the UNB+UNOA:2 header in last week's file - the GP's system wants 'UNH+1' first.\n"
        b"UNZ counts + UNT counts didn't match; we'll resend.\n"
    ),
    # an HL7 segment name, then a colon (a separator HL7 would allow) in prose
    "hl7-looking prose": b"MSH: the message header is missing from yesterday's ADT feed, per the PAS team.\n",
    # JSON-ish braces that are not JSON
    "braces in prose": b"{draft} Discharge plan: {to be agreed} with the family on Monday.\n",
    # comma-separated numbers in a sentence
    "numbers with commas": b"Readings: 5.1, 5.4, 6.0, 5.8 mmol/L over four days, all fasting.\n",
}
