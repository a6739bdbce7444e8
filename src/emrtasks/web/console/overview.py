"""The console's first page: what the last 24 hours looked like and what needs a person now."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emrtasks.service import console
from emrtasks.web.console import chart, common

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def show_overview(request: Request) -> Response:
    session = await common.viewer(request)
    if isinstance(session, Response):
        return session
    found = await console.overview(common.context_of(request))
    return common.render(
        request,
        "overview.html",
        "Overview",
        session,
        overview=found,
        chart=chart.draw(found.hours),
        statuses=chart.ORDER,
    )
