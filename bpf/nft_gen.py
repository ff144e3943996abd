"""The nftables ruleset generation of a network namespace, read over netlink.

The kernel moves it on at every nftables transaction in that namespace, whoever commits
it: an unchanged generation means no table there changed, so a watchdog need not list
(and parse) our table to know it is intact. The socket is opened in the namespace once
(the caller enters it) and stays bound to it; reading costs one round trip, no setns.
"""
from __future__ import annotations

import os
import socket
import struct
import weakref

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN, NFT_MSG_NEWGEN = 16, 15
NFTA_GEN_ID = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
_HDR = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")


class RulesetGeneration:
    """`read()` the generation id of the namespace this was opened in. Raises OSError."""

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            sock.bind((0, 0))
        except OSError:
            sock.close()
            raise
        self._fd = sock.detach()
        self._closer = weakref.finalize(self, os.close, self._fd)  # closed with this object at the latest
        self._seq = 0

    def read(self) -> int:
        self._seq += 1
        body = _NFGEN.pack(socket.AF_UNSPEC, 0, 0)
        msg_type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN
        os.write(self._fd, _HDR.pack(_HDR.size + len(body), msg_type, NLM_F_REQUEST, self._seq, 0) + body)
        while True:
            data = os.read(self._fd, 65536)
            length, kind, _, seq, _ = _HDR.unpack_from(data)
            if seq != self._seq:
                continue  # an answer to an earlier, abandoned request
            if kind == NLMSG_ERROR:
                code = struct.unpack_from("=i", data, _HDR.size)[0]
                raise OSError(-code, f"nftables generation: {os.strerror(-code)}")
            at = _HDR.size + _NFGEN.size
            while at + 4 <= length:
                alen, atype = struct.unpack_from("=HH", data, at)
                if atype & 0x3FFF == NFTA_GEN_ID:
                    return struct.unpack_from(">I", data, at + 4)[0]
                at += (alen + 3) & ~3
            raise OSError(0, "nftables generation: no id in the kernel's answer")

    def close(self) -> None:
        self._closer()
