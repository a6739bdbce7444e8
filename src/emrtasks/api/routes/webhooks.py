"""Webhook endpoints (`/v1/webhook...`, client credentials only) and resending events."""

from fastapi import APIRouter, Request

from emrtasks.api import deps, query, schemas
from emrtasks.api.deps import ClientDep, Ctx, JsonBody
from emrtasks.api.responses import JSON
from emrtasks.service import webhooks

router = APIRouter(prefix="/v1", tags=["webhooks"])
_ERRORS = schemas.errors(400, 401, 404, 413)


@router.post(
    "/webhook",
    status_code=201,
    summary="Register a webhook URL; its secret is shown once",
    responses={201: {"model": schemas.WebhookCreated}, **schemas.errors(400, 401, 409, 413)},
    openapi_extra=schemas.request_body(schemas.WebhookRegistration),
)
async def register_webhook(request: Request, ctx: Ctx, client: ClientDep, body: JsonBody) -> JSON:
    created = await webhooks.register(ctx, deps.origin(request, client=client), client, body)
    return JSON(created, status_code=201)


@router.get(
    "/webhook",
    summary="The client's webhook URLs (no secrets)",
    responses={200: {"model": schemas.WebhookList}, **schemas.errors(400, 401)},
)
async def list_webhooks(ctx: Ctx, client: ClientDep, _query: query.Checked) -> JSON:
    return JSON(await webhooks.configuration(ctx, client))


@router.delete(
    "/webhook/{webhook_id}",
    summary="Remove a webhook URL",
    responses={200: {"model": schemas.Message}, **schemas.errors(401, 404)},
)
async def delete_webhook(request: Request, ctx: Ctx, client: ClientDep, webhook_id: str) -> JSON:
    await webhooks.delete(ctx, deps.origin(request, client=client), client, webhook_id)
    return JSON({"success": True, "message": "Webhook URL removed successfully"})


@router.post(
    "/webhook/{webhook_id}/rotate-secret",
    summary="A new secret; the old one also signs for 24 hours",
    responses={200: {"model": schemas.WebhookRotated}, **schemas.errors(401, 404)},
)
async def rotate_webhook_secret(request: Request, ctx: Ctx, client: ClientDep, webhook_id: str) -> JSON:
    rotated = await webhooks.rotate_secret(ctx, deps.origin(request, client=client), client, webhook_id)
    return JSON({"success": True, "webhook": rotated})


@router.post(
    "/webhook/{webhook_id}/enable",
    summary="Re-enable a disabled webhook URL",
    responses={200: {"model": schemas.WebhookEnabled}, **schemas.errors(401, 404)},
)
async def enable_webhook(request: Request, ctx: Ctx, client: ClientDep, webhook_id: str) -> JSON:
    enabled = await webhooks.enable(ctx, deps.origin(request, client=client), client, webhook_id)
    return JSON({"success": True, "webhook": enabled})


@router.post(
    "/webhook/{webhook_id}/recover",
    status_code=202,
    summary="Resend every event since a time to this webhook URL",
    responses={202: {"model": schemas.WebhookRecovery}, **_ERRORS},
    openapi_extra=schemas.request_body(schemas.WebhookRecover),
)
async def recover_webhook(
    request: Request, ctx: Ctx, client: ClientDep, webhook_id: str, body: JsonBody
) -> JSON:
    recovered = await webhooks.recover(ctx, deps.origin(request, client=client), client, webhook_id, body)
    return JSON(recovered, status_code=202)


@router.post(
    "/webhook-events/{event_id}/retry",
    status_code=202,
    summary="Resend one event to every active webhook URL now",
    responses={202: {"model": schemas.EventResend}, **schemas.errors(400, 401, 404)},
)
async def resend_event(request: Request, ctx: Ctx, client: ClientDep, event_id: str) -> JSON:
    resent = await webhooks.resend_event(ctx, deps.origin(request, client=client), client, event_id)
    return JSON(resent, status_code=202)
