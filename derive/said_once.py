"""A gloss said at its first mention only. The catalog marks it ⟪…⟫ ("详见完整版⟪（用 `--detail full`
生成）⟫"): a reader who has been told once how the full edition is made need not be told again
(review 23, zh items 2 and 19), and which section mentions it first depends on the network."""

import re
from dataclasses import fields, replace

GLOSS = re.compile(r"⟪(.*?)⟫", flags=re.S)


def first_mention_only(built: dict, keys: list[str]) -> dict:
    """The sections' blocks, in document order, with the first marked gloss kept (without its marks)
    and every later one dropped."""
    seen = False

    def settle(value: str) -> str:
        def one(match: re.Match) -> str:
            nonlocal seen
            kept = "" if seen else match.group(1)
            seen = True
            return kept
        return GLOSS.sub(one, value)

    def settled(block):
        changed = {f.name: settle(getattr(block, f.name)) for f in fields(block)
                   if f.init and isinstance(getattr(block, f.name), str) and "⟪" in getattr(block, f.name)}
        items = getattr(block, "items", None)
        if isinstance(items, tuple) and any(isinstance(i, str) and "⟪" in i for i in items):
            changed["items"] = tuple(settle(i) if isinstance(i, str) else i for i in items)
        return replace(block, **changed) if changed else block

    return {key: tuple(settled(block) for block in built[key]) for key in keys if key in built} | \
        {key: section for key, section in built.items() if key not in keys}
