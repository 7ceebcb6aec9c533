"""Whether a polled CAP alert concerns this office: an event type we know, and an area that touches ours. Pure."""

from __future__ import annotations

import math

from shapely.geometry import Polygon, box

from contacts.regions import InvalidRegionCode, query_prefix
from warning.model import EarlyWarning

#: (min_lat, min_lon, max_lat, max_lon)
Box = tuple[float, float, float, float]
EARTH_RADIUS_KM = 6371.0088


def touches_county(code: str, county: str) -> bool:
    """A region code under the county, or a division the county lies in (a city- or province-wide alert)."""
    try:
        prefix = query_prefix(code)
    except InvalidRegionCode:
        return False
    return prefix.startswith(county) or county.startswith(prefix)


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return EARTH_RADIUS_KM * 2 * math.asin(min(1.0, math.sqrt(a)))


def circle_touches(lat: float, lon: float, radius_km: float, extent: Box) -> bool:
    """Whether a circle reaches the box: the distance from its centre to the box's nearest point."""
    min_lat, min_lon, max_lat, max_lon = extent
    near_lat, near_lon = min(max(lat, min_lat), max_lat), min(max(lon, min_lon), max_lon)
    return _haversine_km(lat, lon, near_lat, near_lon) <= radius_km


def polygon_touches(ring: tuple[tuple[float, float], ...], extent: Box) -> bool:
    """Whether a polygon of (lat, lon) points overlaps the box (edges count)."""
    min_lat, min_lon, max_lat, max_lon = extent
    shape = Polygon([(lon, lat) for lat, lon in ring])
    if not shape.is_valid:
        shape = shape.buffer(0)  # a self-crossing ring from a feed: its area still says where it is
    return bool(shape.intersects(box(min_lon, min_lat, max_lon, max_lat)))


def event_reason(content: EarlyWarning) -> str | None:
    """Why the alert's event is not one we know, or None."""
    if content.event_type is not None:
        return None
    info = content.info
    return f"未知事件类型 unknown event type: {(info.event if info else '')[:40]}"


def in_county(content: EarlyWarning, county: str) -> bool:
    return any(touches_county(code, county) for code in content.region_codes)


def in_extent(content: EarlyWarning, extent: Box) -> bool:
    """Whether a polygon or circle of any info reaches the registry's extent."""
    areas = [area for i in content.infos for area in i.areas]
    return (any(circle_touches(c.lat, c.lon, c.radius_km, extent) for a in areas for c in a.circles)
            or any(polygon_touches(ring, extent) for a in areas for ring in a.polygons))


def outside_reason(content: EarlyWarning) -> str:
    codes = ", ".join(content.region_codes[:3]) or "no region code"
    shapes = sum(len(a.polygons) + len(a.circles) for i in content.infos for a in i.areas)
    return f"不在本辖区 outside our area: {codes}; {shapes} polygon(s)/circle(s), none reaching the registry"


def skip_reason(content: EarlyWarning, *, county: str, extent: Box | None) -> str | None:
    """Why an alert is not ours (None: it is): an event type we do not know, or an area that misses the county's
    region codes and the registry's extent (the box around every located person, device and site)."""
    reason = event_reason(content)
    if reason is not None:
        return reason
    if in_county(content, county) or (extent is not None and in_extent(content, extent)):
        return None
    return outside_reason(content)
