"""A self-contained HTML page drawing a dataflow: a layered layout rendered as inline SVG."""

from __future__ import annotations

import itertools
from html import escape

import attrs

from daemon.model.descriptor import Dataflow, NodeSpec, Timer
from daemon.model.graph import edges, timers

CHAR_W = 7.4  # px per character of 12px monospace: boxes fit their labels without a browser
NODE_H, TIMER_H, BEND_H = 46, 28, 12
COL_GAP, ROW_GAP, MARGIN = 150, 34, 40
LABEL_GAP = 18  # px between the labels of parallel edges (a label is 15 px high)


@attrs.define
class _Box:
    key: str
    label: str
    detail: str
    tooltip: str
    kind: str  # node | dynamic | timer | bend (an invisible point a long edge passes through)
    order: int
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@attrs.define
class _Link:
    source: str
    target: str
    label: str
    timer: bool
    via: list[str] = attrs.Factory(list)  # bend keys, one per layer the edge crosses
    back: bool = False  # closes a cycle: drawn as an arc under the graph
    lane: float = 0.0  # among parallel edges of one pair of boxes: its offset from the middle


def render(df: Dataflow) -> str:
    boxes, links = _graph(df)
    _layer(boxes, links)
    _lanes(links)
    width, height = _place(boxes)
    svg = _svg(boxes, links, width, height)
    title = escape(df.name or df.path.name)
    summary = ", ".join(
        _count(n, word)
        for n, word in (
            (len(df.nodes), "node"), (df.connections, "connection"), (len(timers(df)), "timer")
        )
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{title} - flow graph</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
p {{ margin: 0 0 16px; color: #666; font-size: 13px; }}
svg {{ font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }}
.node rect {{ fill: #eef4ff; stroke: #3b6fd8; stroke-width: 1.5; }}
.dynamic rect {{ fill: #fff8e6; stroke: #c98a00; stroke-dasharray: 5 4; }}
.timer rect {{ fill: #f4f4f4; stroke: #999; }}
.detail {{ fill: #777; font-size: 10px; }}
.edge {{ fill: none; stroke: #555; stroke-width: 1.3; }}
.tick {{ stroke: #aaa; stroke-dasharray: 4 3; }}
.label rect {{ fill: #fff; opacity: 0.9; }}
.label text {{ fill: #333; font-size: 10px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{escape(str(df.path))} &#8212; {summary}</p>
{svg}
</body>
</html>
"""


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _lanes(links: list[_Link]) -> None:
    """Spread the edges that join the same two boxes (two outputs of one node into one
    other, say): drawn alike they would lie on top of each other, their labels hidden."""
    groups: dict[tuple[str, str, bool], list[_Link]] = {}
    for link in links:
        groups.setdefault((link.source, link.target, link.back), []).append(link)
    for group in groups.values():
        for i, link in enumerate(group):
            link.lane = i - (len(group) - 1) / 2


def _graph(df: Dataflow) -> tuple[dict[str, _Box], list[_Link]]:
    boxes: dict[str, _Box] = {}
    for node in df.nodes:
        kind = "dynamic" if node.is_dynamic else "node"
        detail = "dynamic" if node.is_dynamic else node.path.rsplit("/", 1)[-1]
        key = f"n:{node.id}"
        boxes[key] = _Box(key, node.id, detail, _tooltip(node), kind, len(boxes))
    links = []
    for node in df.nodes:
        for i in node.inputs:
            if isinstance(i.source, Timer):
                # one small timer per receiver: timers tick in the receiving process anyway,
                # and a shared one would stretch edges across the whole drawing
                key = f"t:{node.id}:{i.id}"
                boxes[key] = _Box(key, i.source.spec, "", f"timer {i.source.spec}", "timer", -1)
                links.append(_Link(key, f"n:{node.id}", i.id, True))
    for e in edges(df):
        label = e.input if e.input == e.output else f"{e.output} → {e.input}"
        links.append(_Link(f"n:{e.source}", f"n:{e.target}", label, False))
    return boxes, links


def _tooltip(node: NodeSpec) -> str:
    lines = [node.id, f"path: {node.path}"]
    for i in node.inputs:
        source = i.source.spec if isinstance(i.source, Timer) else str(i.source)
        lines.append(f"in {i.id} <- {source}")
    lines += [f"out {o}" for o in node.outputs]
    return "\n".join(lines)


def _layer(boxes: dict[str, _Box], links: list[_Link]) -> None:
    """Longest-path layers once the edges closing cycles are set aside; then bends and order."""
    node_links = [link for link in links if not link.timer]
    succ: dict[str, list[_Link]] = {key: [] for key in boxes}
    for link in node_links:
        succ[link.source].append(link)
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    finished: list[str] = []
    for root in (key for key, box in boxes.items() if box.kind != "timer"):
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            key, out = stack[-1]
            step = next(out, None)
            if step is None:
                state[key] = 2
                finished.append(key)
                stack.pop()
            elif state.get(step.target) == 1:
                step.back = True
            elif step.target not in state:
                state[step.target] = 1
                stack.append((step.target, iter(succ[step.target])))
    timed = {link.target for link in links if link.timer}
    for key in timed:  # a timer needs a column before its receiver
        boxes[key].layer = 1
    for key in reversed(finished):  # a topological order once back edges are left out
        for link in succ[key]:
            if not link.back:
                target = boxes[link.target]
                target.layer = max(target.layer, boxes[key].layer + 1)
    for link in links:
        if link.timer:
            boxes[link.source].layer = boxes[link.target].layer - 1
    for link in node_links:
        a, b = boxes[link.source], boxes[link.target]
        for layer in range(a.layer + 1, b.layer) if not link.back else ():
            key = f"b:{len(boxes)}"
            boxes[key] = _Box(key, "", "", "", "bend", len(boxes), layer=layer)
            link.via.append(key)
    _order(boxes, links)


def _order(boxes: dict[str, _Box], links: list[_Link]) -> None:
    """Barycentre sweeps: each box moves toward the mean row of its neighbours (fewer crossings)."""
    pairs: list[tuple[str, str]] = []
    for link in links:
        if not link.back:
            chain = [link.source, *link.via, link.target]
            pairs += list(itertools.pairwise(chain))
    layers: dict[int, list[_Box]] = {}
    for box in sorted(boxes.values(), key=lambda b: (b.order < 0, b.order)):
        layers.setdefault(box.layer, []).append(box)
    for col in layers.values():
        for i, box in enumerate(col):
            box.order = i
    for sweep in range(4):
        down = sweep % 2 == 0
        for n in sorted(layers, reverse=not down):
            near: dict[str, list[int]] = {}
            for a, b in pairs:
                mine, other = (b, a) if down else (a, b)
                if boxes[mine].layer == n and boxes[other].layer == n + (-1 if down else 1):
                    near.setdefault(mine, []).append(boxes[other].order)
            col = layers[n]
            col.sort(
                key=lambda b: sum(near[b.key]) / len(near[b.key]) if b.key in near else b.order
            )
            for i, box in enumerate(col):
                box.order = i


def _place(boxes: dict[str, _Box]) -> tuple[float, float]:
    layers: dict[int, list[_Box]] = {}
    for box in sorted(boxes.values(), key=lambda b: b.order):
        box.w = max(len(box.label), len(box.detail)) * CHAR_W + 28 if box.kind != "bend" else 0
        box.h = {"timer": TIMER_H, "bend": BEND_H}.get(box.kind, NODE_H)
        layers.setdefault(box.layer, []).append(box)
    heights = {n: sum(b.h for b in col) + ROW_GAP * (len(col) - 1) for n, col in layers.items()}
    tallest = max(heights.values(), default=0.0)
    x = float(MARGIN)
    for n in sorted(layers):
        col = layers[n]
        col_w = max(b.w for b in col)
        y = MARGIN + (tallest - heights[n]) / 2
        for box in col:
            box.x, box.y = x + (col_w - box.w) / 2, y
            y += box.h + ROW_GAP
        x += col_w + COL_GAP
    return x - COL_GAP + MARGIN, tallest + 2 * MARGIN + 40  # room below for cycle arcs


def _bow(shift: float) -> float:
    """How far to move a cubic's two control points for its midpoint to move by `shift`:
    a cubic's midpoint is (P0 + 3 P1 + 3 P2 + P3) / 8, so it moves 3/4 of their offset."""
    return shift * 4 / 3


def _curve(
    x0: float, y0: float, x1: float, y1: float, bow: float = 0.0
) -> tuple[str, float, float]:
    """A horizontal-tangent cubic from (x0, y0) to (x1, y1) whose control points are moved
    down by `bow`, and its midpoint."""
    dx = (x1 - x0) / 2
    mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2 + bow * 3 / 4
    c0, c1 = f"{x0 + dx:.1f} {y0 + bow:.1f}", f"{x1 - dx:.1f} {y1 + bow:.1f}"
    return f"C {c0}, {c1}, {x1:.1f} {y1:.1f}", mid_x, mid_y


def _svg(boxes: dict[str, _Box], links: list[_Link], width: float, height: float) -> str:
    parts = [
        f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}"'
        ' role="img">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    labels = []
    for link in links:
        a, b = boxes[link.source], boxes[link.target]
        # parallel edges leave and enter their boxes a little apart, inside the box's height
        spread = link.lane * min(10.0, (min(a.h, b.h) - 8) / (2 * abs(link.lane) + 1))
        x0, y0 = a.x + a.w, a.y + a.h / 2 + spread
        x1, y1 = b.x, b.y + b.h / 2 + spread
        if link.back:  # leave right, swing under the graph, come back in from the left
            low = height - MARGIN / 2 + link.lane * LABEL_GAP
            d = f"M {x0:.1f} {y0:.1f} C {x0 + 80:.1f} {low:.1f}, {x1 - 80:.1f} {low:.1f}, "
            d += f"{x1:.1f} {y1:.1f}"
            mx, my = (x0 + x1) / 2, (y0 + y1 + 6 * low) / 8
        else:
            d, points = f"M {x0:.1f} {y0:.1f}", [(x0, y0)]
            for key in link.via:
                bend = boxes[key]
                points.append((bend.x, bend.y + bend.h / 2))
            points.append((x1, y1))
            for i, ((px, py), (qx, qy)) in enumerate(itertools.pairwise(points)):
                # the last stretch bows out so that parallel labels sit LABEL_GAP apart
                last = i == len(points) - 2
                bow = _bow(link.lane * LABEL_GAP - spread) if last else 0.0
                segment, mx, my = _curve(px, py, qx, qy, bow)
                d += f" {segment}"
            # the label sits on the last stretch, next to the input it names
        cls = "edge tick" if link.timer else "edge"
        parts.append(f'<path class="{cls}" marker-end="url(#arrow)" d="{d}"/>')
        lw = len(link.label) * CHAR_W * 10 / 12 + 8
        labels.append(
            f'<g class="label"><rect x="{mx - lw / 2:.1f}" y="{my - 8:.1f}" width="{lw:.1f}" '
            f'height="15" rx="3"/><text x="{mx:.1f}" y="{my + 3.5:.1f}" text-anchor="middle">'
            f"{escape(link.label)}</text></g>"
        )
    for box in sorted(boxes.values(), key=lambda b: (b.layer, b.order)):
        if box.kind == "bend":
            continue
        cx = box.x + box.w / 2
        body = [
            f'<g class="{box.kind}"><title>{escape(box.tooltip)}</title>',
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h}" '
            f'rx="{14 if box.kind == "timer" else 6}"/>',
            f'<text x="{cx:.1f}" y="{box.y + 18:.1f}" text-anchor="middle">'
            f"{escape(box.label)}</text>",
        ]
        if box.detail:
            body.append(
                f'<text class="detail" x="{cx:.1f}" y="{box.y + 35:.1f}" '
                f'text-anchor="middle">{escape(box.detail)}</text>'
            )
        parts.append("".join(body) + "</g>")
    parts += labels  # drawn last so edge labels sit above the lines
    parts.append("</svg>")
    return "\n".join(parts)
