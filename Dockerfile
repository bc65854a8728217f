# One image for every malestrom process: the command decides its role
# (`malestrom worker`, `malestrom api --host 0.0.0.0`, `malestrom simulate --url …`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 malestrom
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingestion ingestion
COPY streams streams
COPY news2 news2
COPY api api
COPY infra infra
RUN pip install --no-cache-dir .
USER malestrom
EXPOSE 8080
CMD ["malestrom", "api", "--host", "0.0.0.0", "--port", "8080"]
