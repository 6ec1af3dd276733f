"""All routers, gathered in one place."""

from fastapi import APIRouter

from api.routes import (
    conversation_extras,
    conversations,
    files,
    health,
    metrics,
    projects,
    search,
    sessions,
    usage,
    ws,
)

api_router = APIRouter()
for module in (
    health,
    metrics,
    projects,
    conversations,
    conversation_extras,
    files,
    search,
    sessions,
    usage,
    ws,
):
    api_router.include_router(module.router)
