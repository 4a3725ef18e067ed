"""The routes about workflows: their state and run history, and the
operator's controls (start, stop, run once and wait, resume a run)."""

from __future__ import annotations

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import caller, int_query, json_body, operator
from medic.api.state import orchestrator


async def workflows(request: web.Request) -> web.Response:
    return web.json_response({"workflows": orchestrator(request).workflows.list()})


async def workflow(request: web.Request) -> web.Response:
    return web.json_response(orchestrator(request).workflows.get(request.match_info["id"]))


async def workflow_start(request: web.Request) -> web.Response:
    """Resume the schedule and start a run; with ``{"run": false}`` only resume it."""
    orch, wid = orchestrator(request), request.match_info["id"]
    body = await json_body(request)
    unknown = sorted(set(body) - {"run"})
    run = body.get("run", True)
    if unknown or not isinstance(run, bool):
        raise ApiError(422, "INVALID_BODY", "the body may only hold run: true or false")
    orch.store.audit("operator.workflow_start", None, **caller(request), workflow=wid, run=run)
    if not run:
        resumed = orch.workflows.resume_schedule(wid)
        answer = {"workflow": wid, "run_id": None, "status": "resumed" if resumed else "scheduled"}
        return web.json_response(answer, status=202)
    run_id = await orch.start_workflow(wid)
    return web.json_response({"workflow": wid, "run_id": run_id, "status": "running"}, status=202)


async def workflow_stop(request: web.Request) -> web.Response:
    orch, wid = orchestrator(request), request.match_info["id"]
    orch.store.audit("operator.workflow_stop", None, **caller(request), workflow=wid)
    cancelled = await orch.stop_workflow(wid)
    return web.json_response({"workflow": wid, "cancelled_run": cancelled, "status": "stopped"})


async def workflow_run(request: web.Request) -> web.Response:
    orch, wid = orchestrator(request), request.match_info["id"]
    orch.store.audit("operator.workflow_run", None, **caller(request), workflow=wid)
    record = await orch.workflows.run(wid)
    return web.json_response(record.as_json())


async def workflow_run_resume(request: web.Request) -> web.Response:
    orch, wid = orchestrator(request), request.match_info["id"]
    run_id = _run_id(request)
    who = operator(request)
    orch.store.audit("operator.workflow_resume", None, who=who, workflow=wid, run_id=run_id)
    await orch.workflows.resume(wid, run_id, who)
    return web.json_response({"workflow": wid, "run_id": run_id, "status": "running"}, status=202)


def _run_id(request: web.Request) -> int:
    raw = request.match_info["run"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:  # SQLite's integer range
        raise ApiError(404, "RUN_NOT_FOUND", "run ids are integers from 1")
    return int(raw)


async def workflow_runs(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 20, 1000)
    wid = request.match_info["id"]
    runs = orchestrator(request).workflows.runs(wid, limit)
    return web.json_response({"workflow": wid, "runs": [run.as_json() for run in runs]})


__all__ = [
    "workflow",
    "workflow_run",
    "workflow_run_resume",
    "workflow_runs",
    "workflow_start",
    "workflow_stop",
    "workflows",
]
