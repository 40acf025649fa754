"""README.md: the terms a newcomer meets are explained in its glossary."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

TERMS = (
    "the seed",
    "the seed's priors",
    "DogStatsD",
    "SO_PEERCRED",
    "Mann-Kendall",
    "Theil-Sen",
    "Beta posterior",
)


def glossary(text: str) -> dict[str, str]:
    """The glossary's entries, term -> explanation."""
    section = text.split("\n## Glossary\n", 1)[1].split("\n## ", 1)[0]
    entry = re.compile(r"^\* \*\*(.+?)\*\*: (.+?)(?=^\* |\Z)", re.MULTILINE | re.DOTALL)
    entries = entry.findall(section)
    return {term: " ".join(body.split()) for term, body in entries}


class TestGlossary:
    def test_every_term_is_explained(self) -> None:
        """Each term used without explanation has a one-entry, plain explanation."""
        entries = glossary(README.read_text(encoding="utf-8"))
        assert set(TERMS) <= set(entries)
        for term in TERMS:
            assert 20 <= len(entries[term]) <= 250, term

    def test_first_seed_links_to_the_glossary(self) -> None:
        """The first mention of the seed is a link to the glossary."""
        text = README.read_text(encoding="utf-8")
        first = re.search(r"\bseed\b", text)
        assert first is not None
        assert text[first.start() - 1 : first.end() + 12] == "[seed](#glossary)"
