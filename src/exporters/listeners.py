"""Listening sockets of the exporters: every address a host name resolves to, one port.

Kept apart from ``serving`` (asyncio, h11): the ports are bound before the first refresh, and
the HTTP layer is loaded after it (``runtime.start_exporters``).
"""

from __future__ import annotations

import errno
import logging
import socket

__all__ = ["bind_listeners", "format_address", "listen_addresses"]

logger = logging.getLogger("exporters")

_LISTEN_BACKLOG = 1024
#: A name's address of a family this host cannot bind (no IPv6, no such local address): skipped
#: when the name has other addresses.
_NOT_HERE = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})


def listen_addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple]]:
    """(family, socket address) of each distinct TCP address ``host`` resolves to.

    An IPv4 or IPv6 literal is itself; a name such as ``localhost`` may give both families.
    Raises OSError (``socket.gaierror``) when it resolves to nothing.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    found: dict[tuple, tuple[socket.AddressFamily, tuple]] = {}
    for family, _, _, _, address in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found.setdefault((family, *address), (family, tuple(address)))
    if not found:
        raise socket.gaierror(f"{host!r} has no IPv4 or IPv6 address")
    return list(found.values())


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets on every address of ``host`` (all on one port).

    ``::`` accepts IPv4 too (IPV6_V6ONLY off) where the OS allows it and the name gave no IPv4
    address of its own; every other IPv6 socket is IPv6 only. An address the host cannot bind
    (an IPv6 name on a host without IPv6) is skipped with a warning when another one binds.
    Raises OSError when none binds, or when one is in use.
    """
    addresses = listen_addresses(host, port)
    has_ipv4 = any(family == socket.AF_INET for family, _ in addresses)
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            dual = (family == socket.AF_INET6 and address[0] == "::" and not has_ipv4
                    and socket.has_dualstack_ipv6())
            if sockets:  # port 0: every address gets the port the first one was given
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock = socket.create_server(address, family=family, backlog=_LISTEN_BACKLOG,
                                            dualstack_ipv6=dual)
            except OSError as exc:
                if len(addresses) == 1 or exc.errno not in _NOT_HERE:
                    raise
                logger.warning("not listening on %s (of %s): %s", address[0], host,
                               exc.strerror or exc)
                continue
            sock.setblocking(False)
            sockets.append(sock)
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, f"no address of {host!r} can be bound here")
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def format_address(address: tuple) -> str:
    """``host:port`` of a socket address, an IPv6 host in brackets."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
