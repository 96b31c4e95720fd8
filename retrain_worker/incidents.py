"""The idempotency record in Redis: hash ``Keys.retrain(model)``.

Fields: ``incident:<id>`` (the Incident, JSON), ``drift:<drift_id>`` and ``window:<key>`` (→ incident
id), ``cooldown_from`` (start of the last retrain that trained), ``starved:<source>`` (the last retrain
refused for want of data, ``Starved`` JSON, per source ``predictions`` or ``labels``). Opening an
incident writes its fields in one transaction, so a worker killed at any point finds either nothing (and
starts over) or the open incident (and resumes).
"""

from __future__ import annotations

from typing import cast

import msgspec
import redis

from driftwarden.contract.storage import Keys
from retrain_worker.exceptions import ServiceUnavailable
from retrain_worker.policy import Incident, IncidentContext, Starved

_decoder = msgspec.json.Decoder(Incident)
_starved_decoder = msgspec.json.Decoder(Starved)


def unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"Redis is unavailable: {exc}", reason="redis_unavailable")


class IncidentStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys

    def key(self, model: str) -> str:
        return self.keys.retrain(model)

    def _incident(self, model: str, incident_id: bytes | str | None) -> Incident | None:
        if incident_id is None:
            return None
        iid = incident_id.decode() if isinstance(incident_id, bytes) else incident_id
        raw = self._redis.hget(self.key(model), f"incident:{iid}")
        return None if raw is None else _decoder.decode(raw)

    def state(self, model: str, drift_id: str | None, window_key: str) -> IncidentContext:
        """What is recorded for this drift id, this window and the model's cooldown."""
        source = window_key.split(":", 1)[0]
        try:
            by_drift_id, by_window_id, last, starved = self._redis.hmget(
                self.key(model), f"drift:{drift_id}", f"window:{window_key}", "cooldown_from",
                f"starved:{source}")
            return IncidentContext(
                by_drift=self._incident(model, by_drift_id) if drift_id else None,
                by_window=self._incident(model, by_window_id),
                cooldown_from=float(last) if last is not None else None,
                starved=_starved_decoder.decode(starved) if starved is not None else None,
            )
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def open(self, incident: Incident) -> None:
        """Record a new incident as ``training`` with its window and drift id."""
        fields: dict[str, bytes | str] = {
            f"incident:{incident.incident_id}": msgspec.json.encode(incident),
            f"window:{incident.window_key}": incident.incident_id,
            "last_incident": incident.incident_id,
        }
        if incident.drift_id:
            fields[f"drift:{incident.drift_id}"] = incident.incident_id
        self._write(incident.model, fields)

    def attach(self, model: str, drift_id: str, incident_id: str) -> None:
        """Record that ``drift_id`` belongs to an existing incident (a redelivery finds it)."""
        self._write(model, {f"drift:{drift_id}": incident_id})

    def save(self, incident: Incident, cooldown: bool = False,
             starved: tuple[str, Starved | None] | None = None) -> None:
        """Update the incident; ``cooldown`` restarts the model's cooldown from the incident's start;
        ``starved`` = (source, record) records a refusal for want of data, or (source, None) clears it."""
        fields: dict[str, bytes | str] = {f"incident:{incident.incident_id}": msgspec.json.encode(incident)}
        if cooldown:
            fields["cooldown_from"] = repr(incident.started_at)
        drop: list[str] = []
        if starved is not None:
            source, record = starved
            if record is None:
                drop.append(f"starved:{source}")
            else:
                fields[f"starved:{source}"] = msgspec.json.encode(record)
        self._write(incident.model, fields, drop)

    def _write(self, model: str, fields: dict[str, bytes | str], drop: list[str] | None = None) -> None:
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key(model), mapping=fields)  # type: ignore[arg-type]  # stubs: invariant keys
                if drop:
                    pipe.hdel(self.key(model), *drop)
                pipe.execute()
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def load_samples(self, model: str) -> list[bytes]:
        """The joined samples the stream keeps for ``model``, oldest first."""
        try:
            return cast(list[bytes], self._redis.lrange(self.keys.samples(model), 0, -1))
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def save_reference(self, model: str, version: str, data: bytes) -> None:
        try:
            self._redis.set(self.keys.reference(model, version), data)
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def models(self) -> set[str]:
        """Every model the stream has seen."""
        try:
            members = cast(set[bytes], self._redis.smembers(self.keys.all_models()))
            return {m.decode() for m in members}
        except redis.RedisError as exc:
            raise unavailable(exc) from exc
