# HyperFuse compendium: JupyterLab with hfcore and its pinned dependencies.
#   docker build -t hyperfuse .
#   docker run --rm -p 8888:8888 -v /path/to/data:/data hyperfuse
# The data folder (mnist/, fsdd/) is mounted at /data; HYPERFUSE_DATA points there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HYPERFUSE_DATA=/data

WORKDIR /opt/hyperfuse

# Same list as pyproject.toml's dependencies and dev extra; tests/test_environment.py checks it.
RUN pip install --no-cache-dir \
        "torch==2.14.1" \
        "torchvision==0.29.1" \
        "numpy>=1.26" \
        "scipy>=1.11" \
        "scikit-learn>=1.4" \
        "pandas>=2.1" \
        "matplotlib>=3.8" \
        "seaborn>=0.13" \
        "tqdm>=4.66" \
        "papermill>=2.5" \
        "nbformat>=5.9" \
        "ipykernel>=6.29" \
        "ipywidgets>=8.1" \
        "jupyterlab>=4.1" \
        "dask[distributed]>=2024.1" \
        "transformers>=5.0" \
        "sentencepiece>=0.2" \
        "pytest>=8" \
        "nbval>=0.11" \
        "pyyaml>=6" \
        "requests>=2.31" \
        "websocket-client>=1.7"

COPY . .
RUN pip install --no-cache-dir --no-deps -e .

EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root", "--notebook-dir=/opt/hyperfuse"]
