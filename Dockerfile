# The service image: API (`assistant api`), worker (`assistant worker`), migrations
# (`assistant db upgrade`) and Flower all run from it; docker-compose.yml picks the command.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A non-root user owns /app (the working directory, where a default SQLite data dir would go).
RUN groupadd --system --gid 10001 assistant \
    && useradd --system --uid 10001 --gid assistant --home-dir /app --shell /usr/sbin/nologin assistant \
    && install -d -o assistant -g assistant /app

# Dependencies first, from pyproject.toml alone (it builds an empty distribution), so this layer
# is rebuilt only when pyproject.toml changes; then the package itself, not editable. The
# sources are not kept in the image.
COPY pyproject.toml /tmp/src/
RUN pip install /tmp/src && rm -rf /tmp/src
COPY . /tmp/src
RUN pip install --no-deps --force-reinstall /tmp/src && rm -rf /tmp/src

WORKDIR /app
USER assistant

EXPOSE 8000
CMD ["assistant", "api", "--host", "0.0.0.0", "--port", "8000"]
