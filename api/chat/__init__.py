"""The chat over a WebSocket: a connection (`connection`), who may open one (`handshake`), the
commands a client sends (`commands`) and their database side (`store`), the open connections of
every API process (`registry`), and each user's last conversation per project
(`last_conversation`). The route itself is `api.routes.ws`."""
