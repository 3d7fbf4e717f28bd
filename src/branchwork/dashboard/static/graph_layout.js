// Layered layout of the grouped graph (one node per step name, so a few hundred at most).
// Step names can form cycles (a loop calling a then b then a again), so edges that close a
// cycle are set aside as back edges and drawn around the layers instead of ordering them.

/**
 * layout(nodes, edges, sizeOf) -> {positions: Map(id -> {x, y, w, h}), width, height,
 * back: Set of edge indexes that close a cycle}. `sizeOf(id)` gives a node's {w, h}.
 */
export function layout(nodes, edges, sizeOf, gap = { x: 70, y: 24, margin: 16 }) {
  const ids = nodes.map((node) => node.id);
  const { order, back } = acyclicOrder(ids, edges);
  const layerOf = assignLayers(order, edges, back);
  const layers = orderWithinLayers(order, edges, back, layerOf);
  return place(layers, sizeOf, gap, back);
}

/** Kahn's order; when only cycles remain, the node with the fewest waiting inputs goes next. */
function acyclicOrder(ids, edges) {
  const incoming = new Map(ids.map((id) => [id, 0]));
  const outgoing = new Map(ids.map((id) => [id, []]));
  edges.forEach((edge, index) => {
    if (!incoming.has(edge.from) || !incoming.has(edge.to) || edge.from === edge.to) return;
    incoming.set(edge.to, incoming.get(edge.to) + 1);
    outgoing.get(edge.from).push(index);
  });
  const placed = new Set();
  const order = [];
  const ready = ids.filter((id) => incoming.get(id) === 0);
  while (order.length < ids.length) {
    if (!ready.length) {
      const rest = ids.filter((id) => !placed.has(id));
      ready.push(rest.reduce((best, id) => (incoming.get(id) < incoming.get(best) ? id : best)));
    }
    const id = ready.shift();
    if (placed.has(id)) continue;
    placed.add(id);
    order.push(id);
    for (const index of outgoing.get(id)) {
      const to = edges[index].to;
      incoming.set(to, incoming.get(to) - 1);
      if (incoming.get(to) === 0 && !placed.has(to)) ready.push(to);
    }
  }
  const position = new Map(order.map((id, i) => [id, i]));
  const back = new Set();
  edges.forEach((edge, index) => {
    if (position.has(edge.from) && position.has(edge.to) && position.get(edge.from) >= position.get(edge.to)) back.add(index);
  });
  return { order, back };
}

/** Longest path from the sources, then every node pulled right up to its nearest consumer,
 * so an edge rarely spans layers (and so never runs behind a box between its ends). */
function assignLayers(order, edges, back) {
  const layerOf = new Map(order.map((id) => [id, 0]));
  const forward = edges.filter((edge, index) => !back.has(index) && layerOf.has(edge.from) && layerOf.has(edge.to));
  const inputs = new Map();
  const outputs = new Map();
  for (const edge of forward) {
    inputs.set(edge.to, [...(inputs.get(edge.to) || []), edge.from]);
    outputs.set(edge.from, [...(outputs.get(edge.from) || []), edge.to]);
  }
  for (const id of order) {
    for (const from of inputs.get(id) || []) layerOf.set(id, Math.max(layerOf.get(id), layerOf.get(from) + 1));
  }
  for (const id of [...order].reverse()) {
    const next = outputs.get(id);
    if (next) layerOf.set(id, Math.max(layerOf.get(id), Math.min(...next.map((to) => layerOf.get(to))) - 1));
  }
  return layerOf;
}

/** Nodes of each layer sorted by the mean position of their inputs (two sweeps suffice here). */
function orderWithinLayers(order, edges, back, layerOf) {
  const layers = [];
  for (const id of order) (layers[layerOf.get(id)] ||= []).push(id); // no layer is empty
  const inputs = new Map();
  edges.forEach((edge, index) => {
    if (!back.has(index) && edge.from !== edge.to) inputs.set(edge.to, [...(inputs.get(edge.to) || []), edge.from]);
  });
  for (let sweep = 0; sweep < 2; sweep++) {
    const rank = new Map();
    layers.forEach((layer) => layer.forEach((id, i) => rank.set(id, i)));
    for (const layer of layers.slice(1)) {
      const score = (id) => {
        const from = (inputs.get(id) || []).filter((p) => rank.has(p));
        return from.length ? from.reduce((sum, p) => sum + rank.get(p), 0) / from.length : rank.get(id);
      };
      layer.sort((a, b) => score(a) - score(b));
      layer.forEach((id, i) => rank.set(id, i));
    }
  }
  return layers;
}

function place(layers, sizeOf, gap, back) {
  const positions = new Map();
  let x = gap.margin;
  let height = 0;
  for (const layer of layers) {
    const sizes = layer.map(sizeOf);
    const width = Math.max(...sizes.map((size) => size.w));
    let y = gap.margin;
    layer.forEach((id, i) => {
      positions.set(id, { x, y, w: sizes[i].w, h: sizes[i].h });
      y += sizes[i].h + gap.y;
    });
    height = Math.max(height, y - gap.y);
    x += width + gap.x;
  }
  // Back edges are routed below the drawing: leave room for them.
  return { positions, width: x - gap.x + gap.margin, height: height + gap.margin + (back.size ? 40 : 0), back };
}
