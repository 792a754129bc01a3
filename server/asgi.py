"""The collector as an importable ASGI factory, for ``serve --workers N``: uvicorn starts
N worker processes that each build the app from the settings the parent put in the
environment (:data:`SETTINGS_ENV`, JSON). Every worker is a full, stateless collector on
the one database: the group commit and the sequence rule hold across processes as they
do across collector hosts."""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, replace
from typing import Any

from server.app import Settings, create_app
from server.store import Limits

SETTINGS_ENV = "AUDITAGENT_COLLECTOR_SETTINGS"


def settings_to_env(settings: Settings, *, oidc_config: str | None = None) -> str:
    """JSON for the workers. Single sign-on travels as its config file's path (each worker
    loads it, secrets included, from there); notifications are sent by the parent alone."""
    data = asdict(replace(settings, oidc=None, notify=None))
    data["oidc_config"] = oidc_config
    data["limits"] = {k: (v.total_seconds() if isinstance(v, dt.timedelta) else v)
                      for k, v in data["limits"].items()}
    if settings.certificate_lifetime is not None:
        data["certificate_lifetime"] = settings.certificate_lifetime.total_seconds()
    return json.dumps(data)


def settings_from_env(text: str) -> Settings:
    data: dict[str, Any] = json.loads(text)
    oidc_config = data.pop("oidc_config", None)
    if oidc_config:
        from server import oidc

        data["oidc"] = oidc.load_config(oidc_config)
    if data.get("certificate_lifetime") is not None:
        data["certificate_lifetime"] = dt.timedelta(seconds=data["certificate_lifetime"])
    limits = {k: (dt.timedelta(seconds=v) if isinstance(getattr(Limits, k, None), dt.timedelta) else v)
              for k, v in data.pop("limits").items()}
    return Settings(limits=Limits(**limits), **data)


def app_from_environment() -> Any:
    from server.logs import configure_logging

    from server.http_server import freeze_start_up_heap

    configure_logging(os.environ.get("AUDITAGENT_COLLECTOR_LOG_LEVEL", "warning"))
    app = create_app(settings_from_env(os.environ[SETTINGS_ENV]))
    freeze_start_up_heap()
    return app
