"""Whether a warning version reaches anyone: people in its areas, shapes and sites, or devices of its area."""

from __future__ import annotations

from warning.policy import Policy
from warning.record import WarningRecord
from warning.targeting import Targeting

#: the problem a warning that reaches nobody waits with (in pending_approval, shown on the dashboard)
NO_RECIPIENTS = "no_recipients"


async def reaches_anyone(targeting: Targeting, policy: Policy, record: WarningRecord) -> bool:
    """True when the version's audience is not empty: a person in its area (region codes, polygon, circle,
    hazard sites, with its roles) or one of the area's devices its level sends to."""
    if await targeting.contact_ids(record):
        return True
    return bool(await targeting.devices(record, policy.for_level(record.level.value).area_channels))
