"""Every Redis key of the warning core, built in one place.

Everything one warning's fan-out touches in one atomic step (its record, deliveries, counters,
reply codes) carries the hash tag `{w:<id>}`, so the service can move to Redis Cluster.
"""

from __future__ import annotations

PREFIX = "ew:"


def tag(warning_id: str) -> str:
    return "{w:" + warning_id + "}"


# --- warnings -------------------------------------------------------------------------------
def warning_key(warning_id: str) -> str:
    """Hash: the warning record (state, version, who, when) and its current content."""
    return f"{PREFIX}{tag(warning_id)}:warning"


def version_key(warning_id: str, version: int) -> str:
    """String: the CAP content (JSON) of one version, kept for the record and for references."""
    return f"{PREFIX}{tag(warning_id)}:v:{version}"


def audit_key(warning_id: str) -> str:
    """Stream: the append-only audit log of one warning."""
    return f"{PREFIX}{tag(warning_id)}:audit"


WARNINGS_INDEX = PREFIX + "warnings"  #: ZSET id → created (epoch s)
ACTIVE_INDEX = PREFIX + "warnings:active"  #: ZSET id → expires (epoch s): what the expiry sweep reads
#: ZSET '<id>:<version>' → when written: versions to plan, removed once planned (housekeeping finishes the rest)
PLANNING_INDEX = PREFIX + "warnings:planning"
#: SET of warning ids whose end moved (update, cancel) and whose keys' expiry must follow (housekeeping finishes it)
RETENTION_PENDING = PREFIX + "retention:pending"
AUDIT_ALL = PREFIX + "audit"  #: Stream: every audit entry of every warning (capped)
#: counter of the identifiers a unit (ZZZZZZDDDUUUXX) issued in one second (YYYYMMDDhhmmss), for their serial N
SERIAL_KEY = PREFIX + "serial:{unit}:{second}"


def planning_member(warning_id: str, version: int) -> str:
    """A member of PLANNING_INDEX."""
    return f"{warning_id}:{version}"


def idempotency_key(caller: str, key_digest: str) -> str:
    """String (JSON): the first answer to a create sent with this Idempotency-Key by this caller."""
    return f"{PREFIX}idem:{caller}:{key_digest}"


def cap_dedup_key(sender: str, identifier: str) -> str:
    """String: warning id of a CAP message already taken in (sender + identifier)."""
    return f"{PREFIX}cap:seen:{sender}|{identifier}"


def cap_identifier_key(identifier: str) -> str:
    """String: warning id that a CAP identifier (of any version) belongs to, for references."""
    return f"{PREFIX}cap:ident:{identifier}"


def serial_key(unit: str, second: str) -> str:
    return SERIAL_KEY.format(unit=unit, second=second)


def reply_code_key(code: str) -> str:
    """String: the warning id a short reply code (回复1 K7Q) stands for while the warning is open."""
    return f"{PREFIX}reply:{code}"


# --- deliveries -----------------------------------------------------------------------------
def delivery_key(warning_id: str, delivery_id: str) -> str:
    """Hash: one delivery (recipient × channel × version)."""
    return f"{PREFIX}{tag(warning_id)}:d:{delivery_id}"


def deliveries_key(warning_id: str) -> str:
    """ZSET: every delivery id of a warning (score: version)."""
    return f"{PREFIX}{tag(warning_id)}:deliveries"


def recipients_key(warning_id: str) -> str:
    """Hash: recipient id → JSON of what the dashboard needs (role, region, name, masked phone)."""
    return f"{PREFIX}{tag(warning_id)}:recipients"


def counts_key(warning_id: str) -> str:
    """Hash: coverage counters (funnel buckets by channel, region, role)."""
    return f"{PREFIX}{tag(warning_id)}:counts"


def events_key(warning_id: str) -> str:
    """Stream: live delivery events of one warning (for the dashboard)."""
    return f"{PREFIX}{tag(warning_id)}:events"


def retrying_key(warning_id: str) -> str:
    """ZSET: delivery id → when its retry is due (epoch s), for every delivery of the warning in retry_wait."""
    return f"{PREFIX}{tag(warning_id)}:retrying"


def acked_key(warning_id: str) -> str:
    """Hash: recipient id → ack time (epoch s)."""
    return f"{PREFIX}{tag(warning_id)}:acked"


def ref_key(channel: str, provider_ref: str) -> str:
    """String: provider message id → '<warning id>:<delivery id>'."""
    return f"{PREFIX}ref:{channel}:{provider_ref}"


def held_receipts_key(channel: str, provider_ref: str) -> str:
    """List: receipts that arrived before their provider id was recorded."""
    return f"{PREFIX}held:{channel}:{provider_ref}"


def queue_key(channel: str, priority: int) -> str:
    """Stream: the work queue of one channel instance at one priority (0 = most urgent)."""
    return f"{PREFIX}q:{channel}:p{priority}"


DUE_KEY = PREFIX + "due"  #: ZSET of timers (retries, escalations) scored by due time
DUE_LEASES = PREFIX + "due:leases"  #: ZSET of timers being handled, scored by their lease's deadline
DUE_TRIES = PREFIX + "due:tries"  #: HASH timer → how many times it was taken (bounds a timer that keeps failing)
#: ZSET warning id → when a delivery of it last went to retry_wait: where housekeeping looks for stuck retries
RETRYING = PREFIX + "retrying"
#: ZSET registry check id → when it ends, for the checks still open (a check leaves it when it closes)
CHECKS_OPEN = PREFIX + "checks:open"


def ratelimit_key(account: str) -> str:
    """Hash: token bucket of one provider account."""
    return f"{PREFIX}rl:{account}"


def penalty_key(account: str) -> str:
    """String: epoch seconds until which a provider asked us to slow down (429 Retry-After)."""
    return f"{PREFIX}rl:{account}:until"


# --- receipts, acknowledgments, escalation ----------------------------------------------------
def escalation_key(warning_id: str) -> str:
    """Hash: `issued:<version>` → when the version went out; `done:<version>:<step>` → when a step ran."""
    return f"{PREFIX}{tag(warning_id)}:esc"


def reports_key(warning_id: str) -> str:
    """Stream: replies that were not acknowledgments (回执内容, field reports), newest last."""
    return f"{PREFIX}{tag(warning_id)}:reports"


# --- sign-in and API throttling ---------------------------------------------------------------
def throttle_key(name: str, subject_digest: str, window: int) -> str:
    """String (TTL: one window): failures of one subject (an address, a token tried) in one window of `name`."""
    return f"{PREFIX}throttle:{name}:{subject_digest}:{window}"


# --- polled feeds and gauges ----------------------------------------------------------------
# Kept without an expiry (shared, like the registry's): one small set of keys per configured feed and per
# gauge-watched site, bounded by the configuration and the registry rather than by warnings (a feed's seen entries
# are trimmed by time, its skipped list by length; a site's state is removed when its crossing is over). A station's
# readings are trimmed to the feed's retention and expire with it; the poll lease has a TTL.
def feed_key(feed: str) -> str:
    """Hash: a polled feed's health (last success and error, counters, newest `sent`, conditional-request state)."""
    return f"{PREFIX}feed:{feed}"


def feed_skips_key(feed: str) -> str:
    """Hash: why a feed's entries were skipped → how many."""
    return f"{PREFIX}feed:{feed}:skips"


def feed_recent_skips_key(feed: str) -> str:
    """List: the latest skipped entries of a feed (JSON: at, entry, reason), newest first, capped."""
    return f"{PREFIX}feed:{feed}:skipped"


def feed_seen_key(feed: str) -> str:
    """ZSET: entries of a feed already handled (Atom/RSS entry ids, CAP sender|identifier) → when first seen."""
    return f"{PREFIX}feed:{feed}:seen"


def feed_lease_key(feed: str) -> str:
    """String (TTL): the process polling a feed now, so that several processes never poll one feed twice over."""
    return f"{PREFIX}feed:{feed}:lease"


def gauge_series_key(station: str) -> str:
    """ZSET: a station's readings (JSON) scored by reading time (epoch s), trimmed to the feed's retention."""
    return f"{PREFIX}gauge:{station}:readings"


def gauge_site_key(site_id: str) -> str:
    """Hash: a gauge-watched site's open crossing: its warning, level, when the readings fell below, the proposal."""
    return f"{PREFIX}gauge:site:{site_id}"


GAUGE_PROPOSALS = PREFIX + "gauge:proposals"  #: ZSET site id → when a cancellation was proposed (epoch s)
GAUGE_OPEN = PREFIX + "gauge:open"  #: SET of site ids with a remembered crossing (their gauge_site_key hashes)
