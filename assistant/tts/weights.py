"""`assistant models fetch tortoise`: the one place Tortoise weights are downloaded.

Nothing downloads weights behind the user's back (tortoise-tts's own loaders call the hub on
first use); this explicit step fetches the five published files from the Hugging Face repository
tortoise-tts 3.0.0 uses, with a progress bar per file, into `paths.models_dir()/tortoise`.
Each file lands under a temporary name and is renamed into place when complete, so an
interrupted download never leaves a truncated weights file that looks finished, and is checked
against the hub's sha256 before it is. Offline it fails at once with a message saying where to
put the files by hand. `assistant doctor` checks the files present against the published
digests recorded here, whoever put them there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

from assistant.tts.tortoise.config import WEIGHT_FILES
from assistant.tts.tortoise.loader import TortoiseUnavailable, default_models_dir

log = logging.getLogger(__name__)

HUB_REPO = "Manmay/tortoise-tts"
DEFAULT_ENDPOINT = "https://huggingface.co"

# sha256 of the published weight files, as the hub's Git LFS pointers record them (the files'
# pages, "Git LFS Details"; read from stored copies of those pages in 2026-12, not computed here:
# no hub access). All five are Manmay/tortoise-tts, the repository tortoise-tts 3.0.0 downloads
# from: autoregressive, diffusion_decoder, clvp2 and vocoder as its commit 2ccdf9e "added models"
# left them (diffusion_decoder also on jbetker/tortoise-tts-v2's own page, clvp2 and vocoder also
# on copies of the v2 files elsewhere: the same digests); hifidecoder (v3's fast decoder) as
# commit 5067267 "update checkpoint" left it, on one page only (a copy fetched before that
# commit would be reported as not the published file).
PUBLISHED_SHA256: dict[str, str] = {
    "autoregressive.pth": "9c6651b9996df6cef6a1fc459738ae207ab60f902ec49b4d0623ca8ab6110d51",
    "diffusion_decoder.pth": "ea776fc354eabb70cfae145777153483fad72e3e0c5ea345505ded2231a90ce1",
    "clvp2.pth": "6097e708cf692eb93bd770880660953935e87e8995eb864819bbe51b7d91342c",
    "vocoder.pth": "16e8153e9f8ffb00b116f7f67833df2802fcf81e6bc173acc3b3b4bf9f04189d",
    "hifidecoder.pth": "d9273064225f06681067f374a44eb2b1dc9942b32ffdbf6bce702603e38189ab",
}


class TortoiseFetchError(TortoiseUnavailable):
    """The weights could not be downloaded (no network, no hub, disk full)."""


def _check_reachable(endpoint: str, target: Path) -> None:
    """Fail in seconds, not after huggingface_hub's minute of retries, when the hub cannot be reached."""
    manual = f"copy {', '.join(WEIGHT_FILES.values())} into {target} by hand"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise TortoiseFetchError(f"HF_HUB_OFFLINE is set, so nothing can be downloaded: {manual}")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=10).close()
    except OSError as exc:
        raise TortoiseFetchError(f"the model hub {endpoint} is not reachable ({exc}); {manual}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpublished_weights(folder: Path) -> dict[str, str]:
    """{file name: its sha256} for each present weight file that is not the published one.

    Reads every byte (3.4 GB for the real set: tens of seconds), so only `assistant doctor`
    calls it; loading checks only that a file fits the model.
    """
    found = {}
    for name in WEIGHT_FILES.values():
        path = Path(folder) / name
        if path.is_file():
            digest = _sha256(path)
            if digest != PUBLISHED_SHA256[name]:
                found[name] = digest
    return found


def _verify(path: Path, name: str, endpoint: str | None) -> None:
    """Check a downloaded file against the hub's record: sha256 (the ETag of large files) or size."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(HUB_REPO, name, endpoint=endpoint))
    except Exception as exc:
        raise TortoiseFetchError(f"cannot verify {name}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    etag = (meta.etag or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        actual = _sha256(path)
        if actual != etag:
            raise TortoiseFetchError(f"{name}: sha256 {actual} does not match the hub's {etag}; try again")
    elif meta.size is not None and path.stat().st_size != meta.size:
        raise TortoiseFetchError(f"{name}: {path.stat().st_size} bytes, the hub says {meta.size}; try again")


def fetch_tortoise(force: bool = False, *, target: Path | None = None, endpoint: str | None = None) -> Path:
    """Download any missing weight file (all of them with force=True); returns the models directory."""
    from huggingface_hub import hf_hub_download

    target = Path(target) if target else default_models_dir()
    target.mkdir(parents=True, exist_ok=True)
    wanted = [name for name in WEIGHT_FILES.values() if force or not (target / name).is_file()]
    if not wanted:
        print(f"Tortoise weights already present in {target}")
        return target
    _check_reachable(endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT, target)
    staging = target / ".download"
    staging.mkdir(exist_ok=True)
    try:
        for index, name in enumerate(wanted, start=1):
            print(f"[{index}/{len(wanted)}] {name} from {HUB_REPO}", flush=True)
            try:
                downloaded = hf_hub_download(
                    repo_id=HUB_REPO, filename=name, local_dir=staging, endpoint=endpoint, etag_timeout=15
                )
            except Exception as exc:  # offline mode, DNS, refused connection, HTTP errors all end here
                raise TortoiseFetchError(
                    f"cannot download {name} from the model hub ({type(exc).__name__}: {str(exc)[:200]}). "
                    f"Without network access, copy {', '.join(WEIGHT_FILES.values())} into {target} by hand."
                ) from exc
            _verify(Path(downloaded), name, endpoint)
            os.replace(downloaded, target / name)
            log.info("stored %s (%d bytes)", target / name, (target / name).stat().st_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"Tortoise weights stored and verified in {target}")
    return target
