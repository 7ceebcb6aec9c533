"""Reading a feed document: an Atom or RSS index of CAP entries, or one CAP alert or a list of them. Hostile XML
(DTDs, entities, external references) is refused as the CAP parser refuses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element, ParseError, tostring

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from warning.errors import EarlyWarningError

ATOM = "http://www.w3.org/2005/Atom"
#: entries taken from one index in one poll; the rest wait for the next poll (a huge index never stalls the loop)
MAX_ENTRIES = 200


class FeedDocumentError(EarlyWarningError):
    """A feed document that cannot be read: a short reason (label) and a detail people read."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of an index: its key (the entry's id, else its link), the CAP document's link, or the CAP alert the
    entry carries itself."""

    key: str
    link: str | None = None
    alert: bytes | None = None


def _load(data: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedDocumentError("unsafe_xml", f"拒绝不安全的 XML refused unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise FeedDocumentError("malformed", f"XML 格式错误 not well-formed XML: {exc}") from None
    return root


def _local(el: Element) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c) == name]


def _text(el: Element, name: str) -> str:
    found = _children(el, name)
    return (found[0].text or "").strip() if found else ""


def _allowed(link: str, base: str) -> str | None:
    """A link resolved against the feed's address; only http(s), or file next to a file feed."""
    url = urljoin(base, link.strip())
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https") or (scheme == "file" and urlsplit(base).scheme == "file"):
        return url
    return None


def _embedded(el: Element) -> bytes | None:
    for content in _children(el, "content"):
        for child in content:
            if _local(child) == "alert":
                return bytes(tostring(child, encoding="utf-8"))
    return None


def _atom_link(entry: Element) -> str:
    links = _children(entry, "link")
    for pick in (lambda ln: "cap" in ln.get("type", ""), lambda ln: ln.get("rel", "alternate") == "alternate"):
        for link in links:
            if pick(link) and link.get("href"):
                return str(link.get("href"))
    return str(links[0].get("href", "")) if links else ""


def _rss_link(item: Element) -> str:
    for enclosure in _children(item, "enclosure"):
        if "cap" in enclosure.get("type", "") and enclosure.get("url"):
            return str(enclosure.get("url"))
    return _text(item, "link")


def parse_index(data: bytes, base_url: str) -> list[Entry]:
    """The entries of an Atom feed or an RSS channel, in document order (at most MAX_ENTRIES)."""
    root = _load(data)
    id_of: Callable[[Element], str]
    link_of: Callable[[Element], str]
    if _local(root) == "feed":
        items, id_of, link_of = _children(root, "entry"), (lambda e: _text(e, "id")), _atom_link
    elif _local(root) == "rss" and _children(root, "channel"):
        items, id_of, link_of = _children(_children(root, "channel")[0], "item"), (lambda e: _text(e, "guid")), _rss_link
    else:
        raise FeedDocumentError("not_an_index", f"不是 Atom 或 RSS 索引 not an Atom or RSS index: <{_local(root)}>")
    out = []
    for item in items[:MAX_ENTRIES]:
        alert = _embedded(item)
        raw_link = link_of(item)
        link = _allowed(raw_link, base_url) if raw_link else None
        key = id_of(item) or raw_link
        if key and (alert is not None or raw_link):
            out.append(Entry(key=key, link=link, alert=alert))
    return out


def split_alerts(data: bytes) -> list[bytes]:
    """The CAP documents of a `cap` feed's body: the body itself when it is one alert, else each alert element of
    a list (any root whose children are alerts), at most MAX_ENTRIES."""
    root = _load(data)
    if _local(root) == "alert":
        return [data]
    alerts = [bytes(tostring(c, encoding="utf-8")) for c in root if _local(c) == "alert"]
    if not alerts:
        raise FeedDocumentError("not_cap", f"没有 CAP 预警 no CAP alert in the document: <{_local(root)}>")
    return alerts[:MAX_ENTRIES]
