"""Every capture limit and default, in one place (this package, one module a part of the system).

REST validation, the CLI, the web UI (through ``GET /api/limits``) and the agent all read these,
so a limit changes here and nowhere else. Read them as ``limits.NAME``: every part's names are
here, and a test may patch one on this package.
"""

from podcap.limits.access import *  # noqa: F403
from podcap.limits.capture import *  # noqa: F403
from podcap.limits.capture import DOWNLOAD_LIMIT_DEFAULT
from podcap.limits.cluster import *  # noqa: F403
from podcap.limits.cluster import (
    AGENT_PORT_DEFAULT,
    JOIN_TOKEN_TTL_S_DEFAULT,
    JOIN_TOKEN_TTL_S_MAX,
    JOIN_TOKEN_TTL_S_MIN,
    JOIN_TOKEN_USES_DEFAULT,
    JOIN_TOKEN_USES_MAX,
)
from podcap.limits.features import *  # noqa: F403


def as_dict() -> dict[str, int | float]:
    """The limits a client needs beyond the capture spec's, served at GET /api/limits (the
    spec's own come from its fields: ``model.spec_limits``)."""
    return {
        "download_limit_default": DOWNLOAD_LIMIT_DEFAULT,
        "join_token_ttl_s_default": JOIN_TOKEN_TTL_S_DEFAULT,
        "join_token_ttl_s_min": JOIN_TOKEN_TTL_S_MIN,
        "join_token_ttl_s_max": JOIN_TOKEN_TTL_S_MAX,
        "join_token_uses_default": JOIN_TOKEN_USES_DEFAULT,
        "join_token_uses_max": JOIN_TOKEN_USES_MAX,
        "agent_port_default": AGENT_PORT_DEFAULT,
    }
