// A layered layout for DAGs: a task's column is its longest path from a source, rows in name order.
// Enough for the Board's run graphs and for laying out an imported workflow; cycles are tolerated
// (the Playground can hold one while it is being edited) by capping the depth at the node count.

export interface Edge {
  source: string;
  target: string;
}

export interface Point {
  x: number;
  y: number;
}

export const COLUMN_WIDTH = 260;
export const ROW_HEIGHT = 110;

export function layerOf(names: string[], edges: Edge[]): Map<string, number> {
  const depth = new Map(names.map((name) => [name, 0]));
  for (let round = 0; round < names.length; round++) {
    let changed = false;
    for (const edge of edges) {
      const next = (depth.get(edge.source) ?? 0) + 1;
      if (depth.has(edge.target) && next > (depth.get(edge.target) ?? 0) && next < names.length) {
        depth.set(edge.target, next);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

export function layeredPositions(names: string[], edges: Edge[]): Map<string, Point> {
  const depth = layerOf(names, edges);
  const rows = new Map<number, number>();
  const positions = new Map<string, Point>();
  for (const name of names) {
    const column = depth.get(name) ?? 0;
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    positions.set(name, { x: column * COLUMN_WIDTH, y: row * ROW_HEIGHT });
  }
  return positions;
}
