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

export interface CodeSpec {
  pickle: string;
  name?: string;
  source?: string | null;
}

export interface TaskSpec {
  name: string;
  builtin?: string;
  code?: CodeSpec;
  /** the task's function by its key in the workflow's `code` table (instead of `code`) */
  code_ref?: string;
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
  /** each function several tasks run, once (the head shows a spec as stored: code by reference) */
  code?: Record<string, CodeSpec>;
}

/** The spec's tasks, each with its code in place of a `code_ref` into the spec's code table. */
export function tasksWithCode(spec: { tasks?: TaskSpec[]; code?: Record<string, CodeSpec> }): TaskSpec[] {
  const table = spec.code ?? {};
  return (spec.tasks ?? []).map((task) =>
    task.code_ref && table[task.code_ref] ? { ...task, code: table[task.code_ref] } : task,
  );
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
