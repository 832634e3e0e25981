"""Plain HTTP on the WebSocket port: /healthz, /metrics, /api/info. Pure functions.

/healthz answers 200 while the relay serves, and 503 with the reason while it cannot
(a relay over Redis that lost it), so that a load balancer sends clients elsewhere.

websockets hands us every request before the upgrade; a request for one of these paths
gets its answer, a WebSocket upgrade of ``/`` proceeds, anything else is a 404 that says
where to look.
"""

import email.utils
import http
import json
from collections.abc import Callable

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from e2echat.protocol import BLOB_PATH, PROTOCOL_VERSION, SUBPROTOCOL
from e2echat_server.config import RelayConfig


def info_document(config: RelayConfig, version: str) -> bytes:
    """The JSON body of /api/info: name, versions and limits; nothing about users."""
    return json.dumps(
        {
            "name": config.name,
            "version": version,
            "protocol": PROTOCOL_VERSION,
            "subprotocol": SUBPROTOCOL,
            "limits": {
                "max_frame": config.max_frame,
                "max_body": config.max_body,
                "max_members": config.max_members,
                "max_rooms_per_user": config.max_rooms_per_user,
                "history_count": config.history_count,
                "history_age_s": config.history_age_s,
                "mailbox_max": config.mailbox_max,
                "rate": config.rate,
                "burst": config.burst,
            },
        }
    ).encode()


def response(
    status: http.HTTPStatus, body: bytes, content_type: str, *, cors: bool = False
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ]
    )
    if cors:
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Allow-Methods"] = "GET"
    return Response(status.value, status.phrase, headers, body)


def metrics_response(render_metrics: Callable[[], str]) -> Response:
    return response(
        http.HTTPStatus.OK, render_metrics().encode(), "text/plain; version=0.0.4; charset=utf-8"
    )


def health_response(unavailable: str | None) -> Response:
    """/healthz: ``ok``, or 503 and why the relay cannot serve (``unavailable``)."""
    if unavailable is None:
        return response(http.HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
    body = f"unavailable: {unavailable}\n".encode()
    return response(http.HTTPStatus.SERVICE_UNAVAILABLE, body, "text/plain; charset=utf-8")


def metrics_route(
    request: Request, render_metrics: Callable[[], str], unavailable: str | None
) -> Response:
    """The metrics listener's answer: /metrics and /healthz, 404 for anything else."""
    path = request.path.split("?", 1)[0]
    if path == "/metrics":
        return metrics_response(render_metrics)
    if path == "/healthz":
        return health_response(unavailable)
    text = b"Not found. This listener serves /metrics (Prometheus text format).\n"
    return response(http.HTTPStatus.NOT_FOUND, text, "text/plain; charset=utf-8")


def is_upgrade(request: Request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def route(
    request: Request,
    info: bytes,
    render_metrics: Callable[[], str] | None,
    unavailable: str | None,
) -> Response | None:
    """The HTTP answer to ``request``, or None to let a WebSocket upgrade proceed.

    ``render_metrics`` is None when the metrics have a listener of their own;
    ``unavailable`` says why the relay cannot serve now, if it cannot.
    """
    path = request.path.split("?", 1)[0]
    if path == "/healthz":
        return health_response(unavailable)
    if path == "/metrics" and render_metrics is not None:
        return metrics_response(render_metrics)
    if path == "/api/info":
        return response(http.HTTPStatus.OK, info, "application/json", cors=True)
    if path in ("/", BLOB_PATH) and is_upgrade(request):
        offered = request.headers.get_all("Sec-WebSocket-Protocol")
        if any(SUBPROTOCOL in (p.strip() for p in line.split(",")) for line in offered):
            return None
        text = (
            f"This e2echat relay speaks the WebSocket subprotocol {SUBPROTOCOL}; offer it in"
            " Sec-WebSocket-Protocol.\n"
        )
        return response(http.HTTPStatus.BAD_REQUEST, text.encode(), "text/plain; charset=utf-8")
    served = "/healthz, /metrics or /api/info" if render_metrics else "/healthz or /api/info"
    text = (
        "Not found. This is an e2echat relay: connect a WebSocket client to / with the"
        f" subprotocol {SUBPROTOCOL}, or GET {served}.\n"
    )
    return response(http.HTTPStatus.NOT_FOUND, text.encode(), "text/plain; charset=utf-8")
