"""Routes that answer a plain ``dict`` or ``list`` send it without checking it against that type.

FastAPI checks a route's answer against its return annotation, and for a ``def`` route it does
so in a worker thread of its own: a second round trip through the event loop for every such
request, after the route's own. Under load each round trip waits behind everything the loop has
queued (bench figure 10); a plain ``dict`` has nothing to check. A route whose answer has a
model keeps its check. Every router of the API is made with ``route_class=Route``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute

_PLAIN = (dict, list)


class Route(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        model = kwargs.get("response_model")
        if model is None or isinstance(model, DefaultPlaceholder):
            answer = get_typed_return_annotation(endpoint)
            if answer in _PLAIN or typing.get_origin(answer) in _PLAIN:
                kwargs["response_model"] = None
        super().__init__(path, endpoint, **kwargs)
