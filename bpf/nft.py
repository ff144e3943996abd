"""nftables through libnftables' JSON API, in the calling thread's network namespace.

libnftables opens its netlink socket when the context is made: make the `Nft` inside
the namespace it should act on (`with in_netns(name): nft = Nft()`). A context is not
thread-safe; use one per thread.
"""
from __future__ import annotations

import json
from typing import Any

from bpf._lib import ffi, lib
from bpf.errors import NftError


class Nft:
    """A libnftables context speaking JSON both ways.

    Raises NftError with libnftables' own message when a command is refused.
    """

    def __init__(self) -> None:
        self._ctx = lib.nft_ctx_new(lib.NFT_CTX_DEFAULT)
        if self._ctx == ffi.NULL:
            raise NftError("libnftables: cannot create a context")
        flags = lib.nft_ctx_output_get_flags(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, flags | lib.NFT_CTX_OUTPUT_JSON | lib.NFT_CTX_OUTPUT_HANDLE)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)

    def run(self, command: dict | list | str, *, dry_run: bool = False) -> Any:
        """Run a JSON command (`{"nftables": [...]}` or its list) or a plain nft command line.

        Returns the parsed JSON output (None when nft printed nothing). With dry_run,
        the kernel checks the commands and applies nothing.
        """
        if isinstance(command, list):
            command = {"nftables": command}
        text = command if isinstance(command, str) else json.dumps(command)
        lib.nft_ctx_set_dry_run(self._ctx, dry_run)
        try:
            rc = lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
        finally:
            lib.nft_ctx_set_dry_run(self._ctx, False)
        output = ffi.string(lib.nft_ctx_get_output_buffer(self._ctx)).decode()
        error = ffi.string(lib.nft_ctx_get_error_buffer(self._ctx)).decode()
        if rc != 0:
            raise NftError(error or f"nft command failed: {text[:200]}")
        return json.loads(output) if output.strip() else None

    def check(self, command: dict | list | str) -> None:
        """Validate without applying anything. Raises NftError with nft's message."""
        self.run(command, dry_run=True)

    def list(self, what: str = "ruleset") -> list[dict]:
        """`nft list WHAT` as the list of JSON objects under "nftables"."""
        out = self.run(f"list {what}")
        return out["nftables"] if out else []

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> "Nft":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
