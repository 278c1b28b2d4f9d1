"""The message catalogs: every language has every message, with the same placeholders.

Other engineers add messages to en.toml; this test covers whatever keys exist, so a message without
its translation fails here rather than raising KeyError in a user's run.
"""

import re
import tomllib

import pytest

from derive.present import LOCALE_DIR, messages
from derive.spec import LANGUAGES

# placeholders that only carry English inflection ("layer{plural}"); a language without plural
# endings may leave them out, but may not invent others
INFLECTION = {"plural", "hidden_plural"}
PLACEHOLDER = re.compile(r"(?<!\\)\{(\w+)\}")


def flat(catalog: dict) -> dict[str, str]:
    return {f"{table}.{key}": text for table, entries in catalog.items() for key, text in entries.items()}


def placeholders(text: str) -> set[str]:
    """{name} placeholders; TeX groups such as $n_{l}$ and \\tfrac12 inside $…$ are not placeholders."""
    outside_math = re.sub(r"\$[^$]*\$", "", text)
    return set(PLACEHOLDER.findall(outside_math))


def test_every_language_has_a_catalog_and_nothing_else():
    assert sorted(p.stem for p in LOCALE_DIR.glob("*.toml")) == sorted(LANGUAGES)


@pytest.mark.parametrize("lang", [l for l in LANGUAGES if l != "en"])
def test_same_keys_as_english(lang):
    english, other = flat(messages("en")), flat(messages(lang))
    missing = sorted(set(english) - set(other))
    extra = sorted(set(other) - set(english))
    assert not missing, f"{lang}.toml lacks {missing}"
    assert not extra, f"{lang}.toml has keys English does not: {extra}"


@pytest.mark.parametrize("lang", [l for l in LANGUAGES if l != "en"])
def test_same_placeholders_as_english(lang):
    english, other = flat(messages("en")), flat(messages(lang))
    for key in english.keys() & other.keys():
        if key.startswith("language."):  # typesetting settings, not messages
            continue
        want, got = placeholders(english[key]), placeholders(other[key])
        assert got <= want, f"{lang}:{key} uses unknown placeholders {sorted(got - want)}"
        assert want - got <= INFLECTION, f"{lang}:{key} drops {sorted(want - got - INFLECTION)}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_messages_are_non_empty_text_with_balanced_math(lang):
    for key, text in flat(messages(lang)).items():
        assert isinstance(text, str), key
        if not key.startswith("language."):  # settings may be empty (no plot fonts needed)
            # the lesson's wording (a `lesson_*` table) may be empty: the lesson leaves that paragraph to `full`
            assert text.strip() or key.startswith("lesson_"), key
            assert text.count("$") % 2 == 0, key
            assert text.count("`") % 2 == 0, key


def test_the_placeholder_check_can_fail():
    assert placeholders("layer {layer} of $n_{l}$") == {"layer"}
    assert placeholders("of $n_{l}$") == set()


def test_catalog_files_parse_as_utf8_toml():
    for path in LOCALE_DIR.glob("*.toml"):
        with open(path, "rb") as handle:
            assert tomllib.load(handle)
