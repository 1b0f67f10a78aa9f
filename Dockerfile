# MedAI Flow: one image for the Function App's container hosting and both AKS Deployments
# (HTTP and blob worker differ only by configuration, see infra/k8s).
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t <registry>/medai-flow:<sha> .
# Official Azure Functions base image: Functions host 4.x + Python 3.11 worker (Debian).
FROM mcr.microsoft.com/azure-functions/python:4-python3.11

ARG GIT_COMMIT=unknown

# Non-root: the host listens on 8080 instead of the base image's 80 (ASPNETCORE_URLS).
# Writable paths at run time are /tmp and /home/{data,LogFiles,ASP.NET}, mounted as
# emptyDir volumes on AKS so the root filesystem can stay read-only.
ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    AzureFunctionsJobHost__FileWatchingEnabled=false \
    ASPNETCORE_URLS=http://+:8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDAI_GIT_COMMIT=${GIT_COMMIT}

# Runtime dependencies only (never requirements-dev.txt), in their own layer for caching.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY function_app.py host.json /home/site/wwwroot/
COPY inference/ /home/site/wwwroot/inference/
COPY security/ /home/site/wwwroot/security/
COPY service/ /home/site/wwwroot/service/
COPY models/ /home/site/wwwroot/models/

# Compile bytecode at build time (the root filesystem is read-only at run time),
# then create the unprivileged user that owns nothing but its writable mounts.
RUN python -m compileall -q /home/site/wwwroot \
    && groupadd --system --gid 10001 medai \
    && useradd --system --uid 10001 --gid medai --no-create-home --shell /usr/sbin/nologin medai \
    && mkdir -p /home/data /home/LogFiles /home/ASP.NET \
    && chown -R 10001:10001 /home/data /home/LogFiles /home/ASP.NET

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health/live', timeout=4)"]
