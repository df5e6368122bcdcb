"""The timezone picker's list: canonical IANA zones grouped by region, labelled by city.

``available_timezones()`` has ~600 names, among them ``Factory``, ``localtime``, ``posixrules``
and backward-compatible aliases (``US/Eastern``, ``Asia/Calcutta``). The picker offers the zones
of the tz database's ``zone.tab`` (one line per country and zone: the canonical names people
look for), plus UTC. Validation still accepts every name zoneinfo knows (`subs.parse_prefs`),
so a stored alias or one a browser reports keeps working and is shown as it is.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import available_timezones

REGIONS = ("Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia",
           "Europe", "Indian", "Pacific")
SYSTEM_ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")


def _zone_tab() -> str:
    """zone.tab from the tzdata package (a dependency of zoneinfo on some systems), else the
    system's tz database; empty when neither is there."""
    try:
        return resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        pass
    try:
        return SYSTEM_ZONE_TAB.read_text("utf-8")
    except OSError:
        return ""


def canonical_names(zone_tab: str, known: frozenset[str]) -> list[str]:
    """The zone names of a zone.tab text (third column) that zoneinfo knows, sorted; when the
    text has none, the known names under a region folder (no aliases like ``US/Eastern``)."""
    names = {
        parts[2]
        for line in zone_tab.splitlines()
        if line and not line.startswith("#") and len(parts := line.split("\t")) >= 3
    } & known
    if not names:
        names = {n for n in known if n.split("/", 1)[0] in REGIONS and "/" in n}
    return sorted(names)


def label(name: str) -> str:
    """``America/Argentina/Buenos_Aires`` -> ``Argentina / Buenos Aires``."""
    return name.split("/", 1)[-1].replace("_", " ").replace("/", " / ")


@lru_cache(maxsize=1)
def grouped() -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """``(("UTC", (("UTC", "UTC"),)), ("Africa", (("Africa/Abidjan", "Abidjan"), ...)), ...)``."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name in canonical_names(_zone_tab(), frozenset(available_timezones())):
        groups[name.split("/", 1)[0]].append((name, label(name)))
    out: list[tuple[str, tuple[tuple[str, str], ...]]] = [("UTC", (("UTC", "UTC"),))]
    out += [(region, tuple(sorted(groups[region], key=lambda z: z[1])))
            for region in REGIONS if groups.get(region)]
    return tuple(out)


@lru_cache(maxsize=1)
def offered() -> frozenset[str]:
    """Every zone name the picker lists."""
    return frozenset(name for _, zones in grouped() for name, _ in zones)
