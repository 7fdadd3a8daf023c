"""The cluster's ports lie outside the kernel's ephemeral range: a node killed by a drill gets its
ports back when it restarts, because no outgoing connection can be given one of them meanwhile
(weaviate-3 once failed to rebind its Raft RPC port)."""

from __future__ import annotations

import socket

from ragloop.local.cluster.services import LOWEST_CLUSTER_PORT, ephemeral_port_range, free_ports


def test_cluster_ports_and_their_offsets_are_outside_the_ephemeral_range_and_free():
    low, high = ephemeral_port_range()
    chosen = {
        "single": [(p,) for p in free_ports(12)],
        "weaviate pair": [(p, p + 1) for p in free_ports(6, offsets=(0, 1))],
        "seaweedfs": [(p, p + 10000) for p in free_ports(4, offsets=(0, 10000))],
    }
    for kind, groups in chosen.items():
        for ports in groups:
            for port in ports:
                assert LOWEST_CLUSTER_PORT <= port <= 65535 and not low <= port <= high, (kind, port, (low, high))
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # free: we can listen on it
                    probe.bind(("127.0.0.1", port))
    one_call = free_ports(8, offsets=(0, 1))
    assert len({p for base in one_call for p in (base, base + 1)}) == 16


def test_an_outgoing_connection_never_takes_a_cluster_port():
    """The reason for the range: the kernel gives an outgoing connection a local port inside it."""
    low, high = ephemeral_port_range()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", free_ports(1)[0]))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            assert low <= client.getsockname()[1] <= high
