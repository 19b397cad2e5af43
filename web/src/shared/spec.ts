// The parts of a `lattice.workflow/v1` document the UIs read and write (the head validates the rest).
import type { Edge } from "./layout";

export const WORKFLOW_FORMAT = "lattice.workflow/v1";

export interface InputSpec {
  task?: string;
  output?: string;
  value?: unknown;
  encoding?: "json" | "pickle";
  data?: string;
}

export interface TaskSpec {
  name: string;
  builtin?: string;
  code?: { pickle: string; name?: string; source?: string | null };
  inputs?: Record<string, InputSpec>;
  outputs?: string[];
  resources?: Record<string, unknown>;
  timeout?: number | null;
  retries?: number;
  priority?: number;
  sandbox?: string | null;
  network?: boolean | null;
}

export interface WorkflowSpec {
  format: typeof WORKFLOW_FORMAT;
  name: string;
  tasks: TaskSpec[];
}

/** One edge per distinct (upstream, downstream) pair a spec's references draw. */
export function specEdges(spec: { tasks?: TaskSpec[] }): Edge[] {
  const seen = new Set<string>();
  const edges: Edge[] = [];
  for (const task of spec.tasks ?? []) {
    for (const input of Object.values(task.inputs ?? {})) {
      if (input.task && !seen.has(`${input.task}>${task.name}`)) {
        seen.add(`${input.task}>${task.name}`);
        edges.push({ source: input.task, target: task.name });
      }
    }
  }
  return edges;
}
