"""All routers, gathered in one place."""

from fastapi import APIRouter

from api.routes import conversations, files, health, metrics, projects, sessions, usage, ws

api_router = APIRouter()
for module in (health, metrics, projects, conversations, files, sessions, usage, ws):
    api_router.include_router(module.router)
