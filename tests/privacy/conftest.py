"""The dispatch rig (the app with Twilio-protocol stand-ins, workers on a fake clock) for the privacy audit."""

from __future__ import annotations

from tests.dispatch.conftest import make_rig

__all__ = ["make_rig"]
