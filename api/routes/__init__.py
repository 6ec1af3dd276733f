"""All routers, gathered in one place."""

from fastapi import APIRouter

from api.routes import conversations, health, projects, sessions, ws

api_router = APIRouter()
for module in (health, projects, conversations, sessions, ws):
    api_router.include_router(module.router)
