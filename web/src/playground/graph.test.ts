import { describe, expect, it } from "vitest";
import type { CatalogTask } from "../shared/api";
import { connect, fromSpec, type Graph, newNode, toSpec, validate } from "./graph";
import * as H from "./history";

const split: CatalogTask = {
  name: "text_split", title: "Text split", category: "text", description: "", kind: "builtin",
  inputs: [
    { name: "text", type: "string", required: true, description: "", secret: false },
    { name: "sep", type: "string", required: false, default: "\n", description: "", secret: false },
  ],
  outputs: [{ name: "result", type: "array", required: true, description: "", secret: false }],
};
const join: CatalogTask = {
  name: "text_join", title: "Text join", category: "text", description: "", kind: "builtin",
  inputs: [
    { name: "items", type: "array", required: true, description: "", secret: false },
    { name: "sep", type: "string", required: false, default: "\n", description: "", secret: false },
  ],
  outputs: [{ name: "result", type: "string", required: true, description: "", secret: false }],
};
const catalog = [split, join];

function twoTasks(): Graph {
  let g: Graph = { nodes: [], edges: [] };
  g = { ...g, nodes: [...g.nodes, newNode(split, g, { x: 0, y: 0 })] };
  g = { ...g, nodes: [...g.nodes, newNode(join, g, { x: 300, y: 0 })] };
  return g;
}

describe("validate", () => {
  it("names every missing required input", () => {
    const messages = validate(twoTasks()).map((p) => p.message);
    expect(messages).toContain('text_split: input "text" is missing — connect it or set a value');
    expect(messages).toContain('text_join: input "items" is missing — connect it or set a value');
    expect(messages.some((m) => m.includes('"sep"'))).toBe(false);
  });

  it("finds a cycle and says its path", () => {
    let g = twoTasks();
    g = connect(g, { source: "text_split", sourceHandle: "result", target: "text_join", targetHandle: "items" });
    g = connect(g, { source: "text_join", sourceHandle: "result", target: "text_split", targetHandle: "text" });
    const cycle = validate(g).find((p) => p.message.startsWith("Cycle"));
    expect(cycle?.message).toContain("text_split → text_join → text_split");
  });

  it("refuses a type mismatch and bad JSON", () => {
    let g = twoTasks();
    g = connect(g, { source: "text_join", sourceHandle: "result", target: "text_split", targetHandle: "text" });
    g.nodes[1].data.literals.items = "[1, 2";
    const messages = validate(g).map((p) => p.message);
    expect(messages).toContain('text_join: input "items" is not valid JSON');
    g = connect({ ...g, edges: [] }, { source: "text_split", sourceHandle: "result", target: "text_join", targetHandle: "sep" });
    expect(validate(g).map((p) => p.message).join()).toContain('input "sep" takes string but text_split.result gives array');
  });

  it("accepts a complete DAG", () => {
    let g = twoTasks();
    g = connect(g, { source: "text_split", sourceHandle: "result", target: "text_join", targetHandle: "items" });
    g.nodes[0].data.literals.text = "a b";
    expect(validate(g)).toEqual([]);
  });
});

describe("spec round trip", () => {
  it("writes lattice.workflow/v1 and reads it back", () => {
    let g = twoTasks();
    g = connect(g, { source: "text_split", sourceHandle: "result", target: "text_join", targetHandle: "items" });
    g.nodes[0].data.literals = { text: "a,b", sep: "," };
    g.nodes[1].data.literals = { sep: '-' };
    g.nodes[1].data.cpu = 0.5;
    const spec = toSpec("wf", g);
    expect(spec).toEqual({
      format: "lattice.workflow/v1",
      name: "wf",
      tasks: [
        { name: "text_split", builtin: "text_split", inputs: { text: { value: "a,b" }, sep: { value: "," } }, outputs: ["result"] },
        {
          name: "text_join", builtin: "text_join", inputs: { items: { task: "text_split", output: "result" }, sep: { value: "-" } },
          outputs: ["result"], resources: { cpu: 0.5 },
        },
      ],
    });
    const back = fromSpec(spec, catalog);
    expect(toSpec(back.name, back.graph)).toEqual(spec);
    expect(back.graph.nodes[1].position.x).toBeGreaterThan(back.graph.nodes[0].position.x);
  });

  it("keeps an SDK task's code and pickled literals untouched", () => {
    const spec = {
      format: "lattice.workflow/v1" as const,
      name: "sdk",
      tasks: [{ name: "f", code: { pickle: "AAAA", name: "f", source: "def f(p): ..." }, inputs: { x: { encoding: "pickle" as const, data: "gAR=" } }, outputs: ["y"] }],
    };
    const opened = fromSpec(spec, catalog);
    expect(opened.graph.nodes[0].data.outputs.map((p) => p.name)).toEqual(["y"]);
    expect(toSpec("sdk", opened.graph)).toEqual(spec);
  });

  it("refuses what is not a workflow document", () => {
    expect(() => fromSpec({ tasks: [] }, catalog)).toThrow(/lattice.workflow\/v1/);
    expect(() => fromSpec({ format: "lattice.workflow/v1", tasks: [{ name: "x", builtin: "nope" }] }, catalog)).toThrow(/no builtin "nope"/);
  });
});

describe("registered tasks", () => {
  it("put their code and policy into the spec", () => {
    const shout: CatalogTask = {
      name: "shout", title: "shout", category: "registered", description: "", kind: "registered",
      inputs: [{ name: "text", type: "any", required: true, description: "", secret: false }],
      outputs: [{ name: "loud", type: "any", required: true, description: "", secret: false }],
      template: {
        code: { pickle: "AAAA", name: "shout", source: null },
        resources: { cpu: 0.5, gpu: 0, memory: 64, gpu_memory: 0 }, retries: 2, priority: 0, timeout: null,
      },
    };
    const g: Graph = { nodes: [], edges: [] };
    const node = newNode(shout, g, { x: 0, y: 0 });
    node.data.literals.text = '"hi"';
    expect(toSpec("r", { nodes: [node], edges: [] }).tasks[0]).toEqual({
      name: "shout", code: { pickle: "AAAA", name: "shout", source: null }, inputs: { text: { value: "hi" } },
      outputs: ["loud"], resources: { cpu: 0.5, memory: 64 }, retries: 2,
    });
  });
});

describe("history", () => {
  it("undoes and redoes edits, and a new edit drops the redo branch", () => {
    let h = H.start(0);
    h = H.commit(h, 1);
    h = H.commit(h, 2);
    h = H.undo(h);
    expect(h.present).toBe(1);
    h = H.redo(h);
    expect(h.present).toBe(2);
    h = H.undo(H.undo(h));
    expect(h.present).toBe(0);
    h = H.commit(h, 5);
    expect(h.future).toEqual([]);
    expect(H.undo(h).present).toBe(0);
  });
});
