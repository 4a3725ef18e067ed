"""Every error the API answers is ``{"error": {"code", "message"}}`` with the
matching status: ``ApiError`` for the handlers' own refusals, the known
exceptions of the stages below mapped to their codes, aiohttp's own 404/405/413
reshaped, and anything else a 500 whose traceback goes to the log."""

from __future__ import annotations

from aiohttp import web

from medic.api.alerts import AlertPayloadError
from medic.api.state import Handler
from medic.core.errors import (
    InvalidWorkflowError,
    MedicError,
    RecoveryNotFoundError,
    RunNotResumableError,
    ServiceNotFoundError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowRunNotFoundError,
    WorkflowsClosedError,
)
from medic.core.logging import get_logger
from medic.heal.errors import NotWaitingForApproval, RecoveryBusy

log = get_logger("Api")


class ApiError(MedicError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_KNOWN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (ServiceNotFoundError, 404, "SERVICE_NOT_FOUND"),
    (WorkflowNotFoundError, 404, "WORKFLOW_NOT_FOUND"),
    (WorkflowRunNotFoundError, 404, "RUN_NOT_FOUND"),
    (RunNotResumableError, 409, "RUN_NOT_RESUMABLE"),
    (WorkflowAlreadyRunningError, 409, "WORKFLOW_ALREADY_RUNNING"),
    (InvalidWorkflowError, 422, "INVALID_WORKFLOW"),
    (WorkflowsClosedError, 503, "SHUTTING_DOWN"),
    (RecoveryBusy, 409, "RECOVERY_IN_PROGRESS"),
    (RecoveryNotFoundError, 404, "RECOVERY_NOT_FOUND"),
    (NotWaitingForApproval, 409, "NOT_WAITING_FOR_APPROVAL"),
    (AlertPayloadError, 422, "INVALID_ALERT_PAYLOAD"),
]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="medic"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception as exc:
        for kind, status, code in _KNOWN_ERRORS:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        # A bug: the caller still gets the JSON error shape; the traceback goes to the log.
        log.exception(
            "api.request_failed",
            message="API request failed",
            method=request.method,
            path=request.path,
        )
        return error_response(500, "INTERNAL_ERROR", "internal error; the daemon log has details")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = exc.reason.upper().replace(" ", "_")
    message = exc.text or exc.reason
    if isinstance(exc, web.HTTPNotFound) and request.match_info.http_exception is exc:
        message = f"no such endpoint: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        response = error_response(exc.status, code, message)
        response.headers["Allow"] = allowed
        return response
    return error_response(exc.status, code, message)


__all__ = ["ApiError", "error_response", "errors_middleware"]
