"""Graph utilities shared by the float executor, the integer lowering and ``lmu2neuro inspect``:
nested graphs inlined, node types named, and the order in which one time step runs."""

from __future__ import annotations

import collections
from typing import Any

from converters.nir.nodes import STATEFUL_TYPES
from lmu2neuro.core.errors import UserError


def one_line(msg: Any) -> str:
    """A message (an exception's text) on one line: every UserError is one line."""
    return " ".join(str(msg).split())


def flatten_graph(graph, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIRGraphs: node 'sub' becomes 'sub.<name>'; edges into a subgraph go to its
    Input nodes, edges out of it leave from its Output nodes (which become pass-through nodes)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, f"{full}.")
            nodes.update(sub_nodes)
            edges += sub_edges
            entry[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            exit_[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Output)]
        else:
            nodes[full] = node
            entry[full] = exit_[full] = [full]
    for a, b in graph.edges:
        for s in exit_[f"{prefix}{a}"]:
            for d in entry[f"{prefix}{b}"]:
                edges.append((s, d))
    return nodes, edges


def node_type(node) -> str:
    return type(node).__name__


def execution_order(nodes: dict[str, Any], edges: list[tuple[str, str]], where: str = "graph"):
    """Order the nodes for one time step and pick the edges that carry the previous step's value.

    Depth-first from the inputs; an edge back to a node on the current path closes a cycle and is
    read one step late. Every cycle must pass through a stateful node (a neuron or a Delay):
    a cycle of stateless nodes has no defined value and raises a UserError naming its nodes.
    Returns (order, delayed_edges).
    """
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    # a stateless cycle: what remains cyclic once stateful nodes are removed
    stateless = {n for n in nodes if node_type(nodes[n]) not in STATEFUL_TYPES}
    color: dict[str, int] = {}

    def find_cycle(start):
        stack = [(start, iter(succ[start]))]
        path = [start]
        color[start] = 1
        while stack:
            n, it = stack[-1]
            nxt = next((m for m in it if m in stateless), None)
            if nxt is None:
                color[n] = 2
                stack.pop()
                path.pop()
                continue
            if color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in color:
                color[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
                path.append(nxt)
        return None

    for n in sorted(stateless):
        if n not in color:
            cyc = find_cycle(n)
            if cyc:
                raise UserError(
                    f"{where}: cycle without state {' -> '.join(cyc)}: a recurrent loop must pass through a "
                    "neuron or a Delay (expected one of " + ", ".join(STATEFUL_TYPES) + ")"
                )
    roots = [n for n in nodes if node_type(nodes[n]) == "Input"]
    roots += [n for n in nodes if n not in roots and not any(b == n for _, b in edges)]
    state: dict[str, int] = {}
    delayed: set[tuple[str, str]] = set()
    for r in roots + list(nodes):
        if r in state:
            continue
        stack = [(r, iter(succ[r]))]
        state[r] = 1
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[n] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                # the step delay sits on the edge leaving the last stateful node of the loop, so a
                # stateless node inside the loop (a recurrent Affine) still sees its bias at step 0
                path = [m for m, _ in stack]
                loop = path[path.index(nxt):]
                last = max(i for i, m in enumerate(loop) if node_type(nodes[m]) in STATEFUL_TYPES)
                delayed.add((loop[last], loop[last + 1]) if last + 1 < len(loop) else (n, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    order = _topological([n for n in nodes], [e for e in edges if e not in delayed])
    if order is None:  # moving the delays created a same-step loop: delay every edge out of a stateful node in a loop
        delayed |= {(a, b) for a, b in edges if node_type(nodes[a]) in STATEFUL_TYPES}
        order = _topological([n for n in nodes], [e for e in edges if e not in delayed])
    assert order is not None
    return order, delayed


def _topological(names: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    # linear in nodes + edges: a graph from elsewhere may hold thousands of nodes
    indeg = {n: 0 for n in names}
    succ: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        indeg[b] += 1
        succ[a].append(b)
    ready = collections.deque(n for n in names if indeg[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for b in succ[n]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    return order if len(order) == len(names) else None
