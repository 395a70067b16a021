"""Calibration and held-out text that every machine has offline, without shipping anyone's prose.

The default corpus is gathered at run time from the docstrings of a fixed, sorted list of Python
standard-library modules (present on every CPython install). Paragraphs are deduplicated, kept in a fixed
order, and split by a hash of their text into a calibration part (~85%) and a held-out part (~15%), so the two
never share a paragraph and the split does not depend on the order modules are visited.

The user can paste or upload their own text instead; :func:`split_text` applies the same split rule to it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache

from engine.config import LIMITS
from engine.registry import InputError

__all__ = ["Corpus", "default_corpus", "split_text", "token_windows", "check_text"]

# Pure-Python stdlib modules with rich docstrings; import is side-effect free for all of them.
_STDLIB_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "html",
    "http.client", "http.server", "imaplib", "inspect", "ipaddress", "json", "locale", "logging",
    "mailbox", "mimetypes", "numbers", "operator", "optparse", "os", "pathlib", "pickle", "platform",
    "plistlib", "poplib", "pprint", "queue", "random", "re", "reprlib", "sched", "secrets", "selectors",
    "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback", "turtle",
    "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref",
    "xml.dom.minidom", "xml.etree.ElementTree", "zipfile",
)  # fmt: skip
HELDOUT_PERCENT = 15


@dataclass(frozen=True)
class Corpus:
    calibration: str
    heldout: str
    source: str  # a human-readable description of where the text came from

    @property
    def sizes(self) -> dict[str, int]:
        return {"calibration_chars": len(self.calibration), "heldout_chars": len(self.heldout)}


def _paragraphs(doc: str) -> list[str]:
    doc = inspect.cleandoc(doc)
    out = []
    for para in re.split(r"\n\s*\n", doc):
        para = " ".join(line.strip() for line in para.splitlines()).strip()
        # prose only: skip doctest lines, tables, very short fragments
        if len(para) >= 80 and ">>>" not in para and para.count("|") < 3 and para.count("=") < 5:
            out.append(para)
    return out


def _is_heldout(paragraph: str) -> bool:
    digest = hashlib.sha256(paragraph.encode("utf-8")).digest()
    return digest[0] * 100 // 256 < HELDOUT_PERCENT


def split_text(paragraphs: list[str], source: str) -> Corpus:
    seen: set[str] = set()
    cal, held = [], []
    for p in paragraphs:
        if p in seen:
            continue
        seen.add(p)
        (held if _is_heldout(p) else cal).append(p)
    if not cal or not held:  # tiny texts: split by position instead
        n = max(1, len(paragraphs) * (100 - HELDOUT_PERCENT) // 100)
        cal, held = paragraphs[:n], paragraphs[n:] or paragraphs[-1:]
    return Corpus("\n\n".join(cal), "\n\n".join(held), source)


@lru_cache(maxsize=1)
def default_corpus() -> Corpus:
    """Docstrings of a fixed list of stdlib modules (and their public classes and functions)."""
    paragraphs: list[str] = []
    for name in _STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # e.g. a minimal Python without turtle's tkinter
            continue
        docs = [mod.__doc__ or ""]
        for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(
                obj, "__module__", ""
            ) == mod.__name__:
                docs.append(obj.__doc__ or "")
        for d in docs:
            paragraphs.extend(_paragraphs(d))
    return split_text(paragraphs, f"docstrings of {len(_STDLIB_MODULES)} Python standard-library modules")


def check_text(text: str) -> str:
    """Validate user text: not empty, not over the cap, not binary."""
    if text is None or not str(text).strip():
        raise InputError("the text is empty: paste or upload some text, or use the default corpus")
    text = str(text)
    if len(text) > LIMITS.max_text_chars:
        raise InputError(f"the text has {len(text):,} characters; the cap is {LIMITS.max_text_chars:,}")
    if "\x00" in text:
        raise InputError("the text contains NUL bytes: is it a binary file?")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates, e.g. from a client that sent broken UTF-16
        raise InputError(f"the text is not valid Unicode (bad character at position {e.start})") from None
    return text


def user_corpus(text: str) -> Corpus:
    text = check_text(text)
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return split_text(paras, f"user text ({len(text):,} characters)")


def token_windows(tokenizer, text: str, n_samples: int, seq_len: int, *, add_bos: bool = True):
    """The first ``n_samples`` consecutive, non-overlapping windows of ``seq_len`` tokens of ``text``.

    Deterministic (no sampling), so a scan repeats exactly. Returns a LongTensor ``[n_samples, seq_len]``.
    For tokenizers with a BOS token, each window starts with BOS followed by ``seq_len - 1`` text tokens.

    Raises
    ------
    InputError
        When the text holds fewer than ``n_samples * seq_len`` tokens.
    """
    import torch

    if not (LIMITS.min_samples <= n_samples <= LIMITS.max_samples):
        raise InputError(
            f"sample count must be in [{LIMITS.min_samples}, {LIMITS.max_samples}], got {n_samples}"
        )
    if not (LIMITS.min_seq_len <= seq_len <= LIMITS.max_seq_len):
        raise InputError(
            f"sample length must be in [{LIMITS.min_seq_len}, {LIMITS.max_seq_len}], got {seq_len}"
        )
    if n_samples * seq_len > LIMITS.max_scan_tokens:
        raise InputError(
            f"{n_samples} x {seq_len} tokens is over the cap of {LIMITS.max_scan_tokens:,} tokens"
        )
    bos = tokenizer.bos_token_id if add_bos else None
    body = seq_len - (1 if bos is not None else 0)
    need = n_samples * body
    # Tokenise only as much text as needed (about 6 characters per token is generous for English/code).
    ids: list[int] = []
    chars = max(4096, need * 6)
    while True:
        ids = tokenizer(text[:chars], add_special_tokens=False)["input_ids"]
        if len(ids) >= need or chars >= len(text):
            break
        chars *= 2
    if len(ids) < need:
        raise InputError(
            f"the text holds {len(ids):,} tokens, fewer than {n_samples} samples x {body} tokens = {need:,}: "
            "use fewer or shorter samples, or more text"
        )
    windows = torch.tensor(ids[:need], dtype=torch.long).view(n_samples, body)
    if bos is not None:
        windows = torch.cat([torch.full((n_samples, 1), bos, dtype=torch.long), windows], dim=1)
    return windows
