"""The stream's side of ``driftwarden onboard``: adopting a reference built from training data.

``driftwarden onboard`` writes an ``Onboarding`` (the ``build_reference`` bytes and where they came
from) to ``{p}:onboard:{model}``; the model's next batch adopts it in the same transaction as the
batch, before its predictions are counted, so the very first window is compared against it.
"""

from __future__ import annotations

import logging

import msgspec

from detectors.monitor import ModelMonitor
from stream.state import ModelState, ReferenceOrigin, decode_onboarding, decode_origin

log = logging.getLogger(__name__)


def adopt_onboarding(state: ModelState, monitor: ModelMonitor, data: bytes) -> bool:
    """Compare ``monitor`` against the onboarded reference from now on; False (nothing changed) when
    the blob is unreadable (it is dropped: retrying a bad blob on every batch would not mend it)."""
    try:
        onboarding = decode_onboarding(data)
        if onboarding.origin.version is not None and onboarding.origin.version != state.reference_version:
            monitor.start_version(onboarding.reference)  # another version: its concept detectors start over
        else:
            monitor.set_reference(onboarding.reference)  # the same model, now with its training data
    except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
        log.error("onboarded reference is unreadable (%s); keeping the current one", exc)
        return False
    state.reference_origin = onboarding.origin
    if onboarding.origin.version is not None:
        state.reference_version = onboarding.origin.version
    return True


def adopted_origin(state: ModelState, version: str, data: bytes | None, now: float) -> None:
    """After a switch to ``version``: its stored origin (an onboarded training file), else its training
    data as the retrain worker registered it."""
    origin: ReferenceOrigin | None = None
    if data is not None:
        try:
            origin = decode_origin(data)
        except msgspec.DecodeError as exc:
            log.warning("reference origin of version %s is unreadable (%s)", version, exc)
    state.reference_origin = origin or ReferenceOrigin(kind="version_training", version=version, at=now)


def describe(origin: ReferenceOrigin | None, reference_size: int) -> dict[str, object]:
    """The ``reference`` entry of ``/status``."""
    if origin is None:
        return {"source": "first_predictions", "n": reference_size}
    out: dict[str, object] = {"source": origin.kind, "version": origin.version, "at": origin.at}
    if origin.kind == "training_file":
        out |= {"file": origin.file, "sha256": origin.sha256, "rows": origin.rows}
    return out
