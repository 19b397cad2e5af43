// The Playground's model, kept free of React so it can be tested alone: canvas nodes and edges,
// validation (missing inputs, bad literals, type mismatches, cycles), and the conversion to and from
// the `lattice.workflow/v1` document that the head runs and the SDK submits.
import type { CatalogPort, CatalogTask } from "../shared/api";
import { layeredPositions } from "../shared/layout";
import { type InputSpec, type TaskSpec, WORKFLOW_FORMAT, type WorkflowSpec } from "../shared/spec";

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export interface TaskData {
  [key: string]: unknown;
  /** the task's name in the workflow (unique) */
  taskName: string;
  title: string;
  builtin?: string;
  /** a task shipped by value (an SDK `@task` imported from `workflow.export()`): kept as is */
  code?: TaskSpec["code"];
  inputs: CatalogPort[];
  outputs: CatalogPort[];
  /** literal inputs as typed in the side panel (text; JSON unless the port is a string) */
  literals: Record<string, string>;
  /** literals the panel cannot edit (a pickled value from the SDK): passed through untouched */
  opaque: Record<string, InputSpec>;
  cpu: number | null;
  memoryMb: number | null;
  retries: number;
  timeout: number | null;
  /** a registered task's sandbox level (null: the head's default) */
  sandbox?: string | null;
  /** network access at sandbox levels that turn it off (null: the level's default) */
  network?: boolean | null;
  /** the live state and result of the last run from the canvas */
  state?: string;
  invalid?: boolean;
}

export interface CanvasNode {
  id: string;
  position: { x: number; y: number };
  data: TaskData;
  type?: string;
  selected?: boolean;
}

export interface CanvasEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

export interface Graph {
  nodes: CanvasNode[];
  edges: CanvasEdge[];
}

export interface Problem {
  node?: string;
  message: string;
}

export function uniqueName(base: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  if (!used.has(base)) return base;
  let i = 2;
  while (used.has(`${base}_${i}`)) i++;
  return `${base}_${i}`;
}

export function newNode(task: CatalogTask, graph: Graph, position: { x: number; y: number }): CanvasNode {
  const name = uniqueName(task.name, graph.nodes.map((n) => n.data.taskName));
  const template = task.template ?? null;
  return {
    id: name,
    type: "task",
    position,
    data: {
      taskName: name,
      title: task.title,
      ...(template ? { code: template.code } : { builtin: task.name }),
      inputs: task.inputs,
      outputs: task.outputs,
      literals: {},
      opaque: {},
      cpu: template?.resources?.cpu ?? null,
      memoryMb: template?.resources?.memory || null,
      retries: template?.retries ?? 0,
      timeout: template?.timeout ?? null,
      sandbox: template?.sandbox ?? null,
      network: template?.network ?? null,
    },
  };
}

/** The edge that connecting `edge` leaves: one source per input, so a new link replaces the old one. */
export function connect(graph: Graph, edge: Omit<CanvasEdge, "id">): Graph {
  const id = `${edge.source}.${edge.sourceHandle}->${edge.target}.${edge.targetHandle}`;
  const edges = graph.edges.filter((e) => !(e.target === edge.target && e.targetHandle === edge.targetHandle));
  return { ...graph, edges: [...edges, { ...edge, id }] };
}

function compatible(from: string, to: string): boolean {
  if (from === "any" || to === "any" || from === to) return true;
  return from === "integer" && to === "number";
}

function findCycle(graph: Graph): string[] | null {
  const next = new Map<string, string[]>();
  for (const e of graph.edges) next.set(e.source, [...(next.get(e.source) ?? []), e.target]);
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (id: string): string[] | null => {
    state.set(id, "open");
    path.push(id);
    for (const to of next.get(id) ?? []) {
      if (state.get(to) === "open") return [...path.slice(path.indexOf(to)), to];
      if (!state.has(to)) {
        const found = visit(to);
        if (found) return found;
      }
    }
    path.pop();
    state.set(id, "done");
    return null;
  };
  for (const node of graph.nodes) {
    if (!state.has(node.id)) {
      const found = visit(node.id);
      if (found) return found;
    }
  }
  return null;
}

function parseLiteral(port: CatalogPort | undefined, text: string): unknown {
  return port?.type === "string" ? text : JSON.parse(text);
}

/** Everything that would make the head refuse the graph or a task fail on its inputs, said per task. */
export function validate(graph: Graph): Problem[] {
  const problems: Problem[] = [];
  if (graph.nodes.length === 0) problems.push({ message: "The canvas is empty: drag a task from the palette." });
  const names = new Map(graph.nodes.map((n) => [n.id, n.data.taskName]));
  const seen = new Set<string>();
  for (const node of graph.nodes) {
    const { taskName } = node.data;
    if (!NAME_RE.test(taskName)) {
      problems.push({ node: node.id, message: `${taskName || "(empty)"}: a task name is letters, digits, _ . - and starts with a letter or _` });
    }
    if (seen.has(taskName)) problems.push({ node: node.id, message: `${taskName}: two tasks have this name` });
    seen.add(taskName);
    for (const port of node.data.inputs) {
      const linked = graph.edges.some((e) => e.target === node.id && e.targetHandle === port.name);
      const text = node.data.literals[port.name] ?? "";
      if (linked || port.name in node.data.opaque) continue;
      if (text === "") {
        if (port.required) problems.push({ node: node.id, message: `${taskName}: input "${port.name}" is missing — connect it or set a value` });
        continue;
      }
      try {
        parseLiteral(port, text);
      } catch {
        problems.push({ node: node.id, message: `${taskName}: input "${port.name}" is not valid JSON` });
      }
    }
  }
  for (const edge of graph.edges) {
    const from = graph.nodes.find((n) => n.id === edge.source);
    const to = graph.nodes.find((n) => n.id === edge.target);
    const out = from?.data.outputs.find((p) => p.name === edge.sourceHandle);
    const inp = to?.data.inputs.find((p) => p.name === edge.targetHandle);
    if (out && inp && !compatible(out.type ?? "any", inp.type ?? "any")) {
      problems.push({
        node: edge.target,
        message: `${names.get(edge.target)}: input "${inp.name}" takes ${inp.type} but ${names.get(edge.source)}.${out.name} gives ${out.type}`,
      });
    }
  }
  const cycle = findCycle(graph);
  if (cycle) {
    problems.push({ node: cycle[0], message: `Cycle: ${cycle.map((id) => names.get(id) ?? id).join(" → ")} — a workflow must be a DAG` });
  }
  return problems;
}

export function toSpec(name: string, graph: Graph): WorkflowSpec {
  const names = new Map(graph.nodes.map((n) => [n.id, n.data.taskName]));
  const tasks: TaskSpec[] = graph.nodes.map((node) => {
    const d = node.data;
    const inputs: Record<string, InputSpec> = { ...d.opaque };
    for (const port of d.inputs) {
      const edge = graph.edges.find((e) => e.target === node.id && e.targetHandle === port.name);
      if (edge) {
        inputs[port.name] = { task: names.get(edge.source) ?? edge.source, output: edge.sourceHandle ?? "result" };
      } else if ((d.literals[port.name] ?? "") !== "") {
        inputs[port.name] = { value: parseLiteral(port, d.literals[port.name]) };
      }
    }
    const resources: Record<string, number> = {};
    if (d.cpu !== null) resources.cpu = d.cpu;
    if (d.memoryMb !== null) resources.memory = d.memoryMb;
    const task: TaskSpec = {
      name: d.taskName,
      ...(d.builtin ? { builtin: d.builtin } : { code: d.code }),
      inputs,
      outputs: d.outputs.map((p) => p.name),
    };
    if (Object.keys(resources).length) task.resources = resources;
    if (d.retries) task.retries = d.retries;
    if (d.timeout) task.timeout = d.timeout;
    if (d.sandbox) task.sandbox = d.sandbox;
    if (d.network !== null && d.network !== undefined) task.network = d.network;
    return task;
  });
  return { format: WORKFLOW_FORMAT, name: name || "workflow", tasks };
}

/** A `lattice.workflow/v1` document on the canvas (laid out in layers); refuses anything else. */
export function fromSpec(doc: unknown, catalog: CatalogTask[]): { name: string; graph: Graph } {
  const spec = doc as Partial<WorkflowSpec>;
  if (!spec || spec.format !== WORKFLOW_FORMAT || !Array.isArray(spec.tasks)) {
    throw new Error(`not a ${WORKFLOW_FORMAT} document (its "format" must be "${WORKFLOW_FORMAT}" and it needs "tasks")`);
  }
  const tasks = spec.tasks;
  const edges: CanvasEdge[] = [];
  for (const task of tasks) {
    for (const [input, ref] of Object.entries(task.inputs ?? {})) {
      if (ref.task) {
        edges.push({ id: `${ref.task}.${ref.output}->${task.name}.${input}`, source: ref.task, sourceHandle: ref.output ?? "result", target: task.name, targetHandle: input });
      }
    }
  }
  const positions = layeredPositions(tasks.map((t) => t.name), edges);
  const nodes: CanvasNode[] = tasks.map((task) => {
    const known = task.builtin ? catalog.find((c) => c.name === task.builtin) : undefined;
    if (task.builtin && !known) throw new Error(`task ${task.name}: this head has no builtin "${task.builtin}"`);
    const inputs: CatalogPort[] = [...(known?.inputs ?? [])];
    for (const key of Object.keys(task.inputs ?? {})) {
      if (!inputs.some((p) => p.name === key)) inputs.push({ name: key, type: "any", required: true, description: "", secret: false });
    }
    const outputs: CatalogPort[] = known?.outputs ?? (task.outputs ?? []).map((name) => ({ name, type: "any" as const, required: true, description: "", secret: false }));
    const literals: Record<string, string> = {};
    const opaque: Record<string, InputSpec> = {};
    for (const [key, input] of Object.entries(task.inputs ?? {})) {
      if (input.task) continue;
      if (input.encoding === "pickle") opaque[key] = input;
      else {
        const port = inputs.find((p) => p.name === key);
        literals[key] = port?.type === "string" && typeof input.value === "string" ? input.value : JSON.stringify(input.value);
      }
    }
    const resources = (task.resources ?? {}) as { cpu?: number; memory?: number };
    return {
      id: task.name,
      type: "task",
      position: positions.get(task.name) ?? { x: 0, y: 0 },
      data: {
        taskName: task.name,
        title: known?.title ?? task.code?.name ?? task.name,
        builtin: task.builtin,
        code: task.code,
        inputs,
        outputs,
        literals,
        opaque,
        cpu: resources.cpu ?? null,
        memoryMb: resources.memory ?? null,
        retries: task.retries ?? 0,
        timeout: task.timeout ?? null,
        sandbox: task.sandbox ?? null,
        network: task.network ?? null,
      },
    };
  });
  return { name: spec.name ?? "workflow", graph: { nodes, edges } };
}
