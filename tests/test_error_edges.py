"""The error tree at its HTTP and CLI edges, from the one table (``podcap.errors.EDGES``):
native bodies name their kind and a failed precondition is a 409; ``/v1`` keeps NeuVector's
statuses and body exactly; the CLI reads the kind back and exits by the same table."""

from __future__ import annotations

import json

import httpx
import pytest

from podcap import errors
from podcap.api.errors import from_podcap
from podcap.cli.client import error_from_response
from podcap.cli.errors import exit_code

# The contract, written out: (/api status, /v1 status, NeuVector code, CLI exit code).
EXPECTED = {
    errors.PodcapError: (500, 500, 21, 5),
    errors.NotFound: (404, 404, 7, 4),
    errors.Hidden: (404, 404, 7, 4),
    errors.InvalidArgument: (400, 400, 6, 2),
    errors.NotEnoughFilter: (400, 400, 12, 2),
    errors.FailedPrecondition: (409, 400, 6, 6),
    errors.AlreadyExists: (409, 409, 6, 6),
    errors.ResourceExhausted: (429, 429, 3, 6),
    errors.Unauthenticated: (401, 401, 3, 3),
    errors.PermissionDenied: (403, 403, 3, 3),
    errors.Unavailable: (503, 503, 24, 5),
    errors.CaptureFailed: (500, 500, 21, 5),
}


def test_every_class_of_the_tree_has_its_row() -> None:
    """A class added to the tree without a row would be answered as its parent, silently."""
    tree = {cls for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.PodcapError)}
    assert tree == set(errors.EDGES) == set(EXPECTED)
    for cls in errors.EDGES:  # a parent before its children: kind_for_status finds the parent
        assert all(list(errors.EDGES).index(base) < list(errors.EDGES).index(cls)
                   for base in cls.__mro__[1:] if base in errors.EDGES)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_each_kind_at_each_edge(cls: type[errors.PodcapError]) -> None:
    api_status, v1_status, code, exit_ = EXPECTED[cls]
    exc = cls("what to change")
    native = from_podcap(exc)
    body = json.loads(native.body)
    public = "NotFound" if cls is errors.Hidden else cls.__name__  # nothing leaks
    assert native.status_code == api_status
    assert body == {"code": code, "error": errors.EDGES[cls].short, "message": "what to change",
                    "kind": public}
    v1 = from_podcap(exc, v1=True)
    assert v1.status_code == v1_status
    assert json.loads(v1.body) == {"code": code, "error": errors.EDGES[cls].short,
                                   "message": "what to change"}
    assert exit_code(exc) == exit_
    # The CLI reads the native answer back into the same kind, and so exits the same way.
    back = error_from_response(httpx.Response(api_status, json=body))
    assert type(back) is errors.KINDS[public] and back.message == "what to change"
    assert exit_code(back) == exit_


def test_an_answer_without_a_kind_is_read_by_its_status() -> None:
    """A proxy's answer, or a body that is not podcap's."""
    assert type(error_from_response(httpx.Response(409, text="conflict"))) is \
        errors.FailedPrecondition
    assert type(error_from_response(httpx.Response(502, text="bad gateway"))) is \
        errors.PodcapError
    assert type(error_from_response(httpx.Response(503, json={"message": "x"}))) is \
        errors.Unavailable
    assert exit_code(error_from_response(httpx.Response(404, json={"kind": "Bogus"}))) == 4


def test_retry_after_rides_along() -> None:
    answer = from_podcap(errors.ResourceExhausted("slow down", retry_after=2.2))
    assert answer.headers["Retry-After"] == "3"
