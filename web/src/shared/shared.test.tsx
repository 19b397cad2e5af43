import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api } from "./api";
import { formatDuration, previewValue } from "./format";
import { layeredPositions } from "./layout";
import { Login } from "./Login";
import { specEdges, tasksWithCode } from "./spec";
import { StateBadge } from "./StateBadge";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

describe("previews never decode a pickle", () => {
  it("pretty-prints JSON and sizes anything else", () => {
    expect(previewValue({ encoding: "json", value: { a: [1, 2] } })).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(previewValue({ encoding: "pickle", data: "AAAA" })).toBe("<pickle value, 3 bytes (not decoded here)>");
    expect(formatDuration(0.25)).toBe("250 ms");
    expect(formatDuration(75)).toBe("1 min 15 s");
  });
});

describe("DAG layout", () => {
  it("puts each task right of its inputs", () => {
    const edges = specEdges({ tasks: [{ name: "a" }, { name: "b", inputs: { x: { task: "a", output: "y" } } }, { name: "c", inputs: { x: { task: "b", output: "y" }, z: { task: "a", output: "y" } } }] });
    expect(edges).toEqual([{ source: "a", target: "b" }, { source: "b", target: "c" }, { source: "a", target: "c" }]);
    const at = layeredPositions(["a", "b", "c"], edges);
    expect(at.get("a")!.x).toBeLessThan(at.get("b")!.x);
    expect(at.get("b")!.x).toBeLessThan(at.get("c")!.x);
  });
});

describe("Login", () => {
  it("says so when the head refuses the token, and keeps a good one for the session", async () => {
    const fetchMock = vi.fn(async (_url: string, init: RequestInit) => {
      const auth = new Headers(init.headers).get("Authorization");
      return auth === "Bearer good"
        ? new Response(JSON.stringify({ nodes: 1 }), { status: 200 })
        : new Response(JSON.stringify({ error: { type: "unauthorized", message: "invalid token" } }), { status: 401 });
    });
    vi.stubGlobal("fetch", fetchMock);
    const onLogin = vi.fn();
    render(<Login title="Board" onLogin={onLogin} />);
    fireEvent.change(screen.getByLabelText("Token"), { target: { value: "bad" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("refused"));
    expect(sessionStorage.getItem("lattice.token")).toBeNull();
    fireEvent.change(screen.getByLabelText("Token"), { target: { value: "good" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(onLogin).toHaveBeenCalled());
    expect(sessionStorage.getItem("lattice.token")).toBe("good");
    expect(fetchMock.mock.calls.every(([url]) => String(url).startsWith("/api/v1/"))).toBe(true);
  });

  it("badges show the state", () => {
    render(<StateBadge state="failed" />);
    expect(screen.getByText("failed").getAttribute("data-state")).toBe("failed");
  });
});

describe("a workflow's spec, a page at a time", () => {
  it("asks for every page and puts them together, code by reference resolved", async () => {
    const code = { pickle: "AAAA", name: "square" };
    const pages: Record<string, unknown> = {
      "/api/v1/workflows/w": {
        workflow_id: "w", name: "fan", created_at: 1, task_count: 3, next_after: 2, tasks: ["a", "b"], sinks: ["b"],
        spec: { name: "fan", code: { f0: code }, tasks: [{ name: "a", code_ref: "f0" }, { name: "b", builtin: "noop" }] },
      },
      "/api/v1/workflows/w?after=2": {
        workflow_id: "w", name: "fan", created_at: 1, task_count: 3, next_after: null, tasks: ["c"], sinks: ["c"],
        spec: { name: "fan", code: { f0: code }, tasks: [{ name: "c", code_ref: "f0" }] },
      },
    };
    const fetchMock = vi.fn(async (url: string) =>
      url in pages ? new Response(JSON.stringify(pages[url]), { status: 200 }) : new Response("{}", { status: 404 }));
    vi.stubGlobal("fetch", fetchMock);
    const workflow = await api.getWorkflow("w");
    expect(fetchMock).toHaveBeenCalledTimes(2);
    expect([workflow.tasks, workflow.sinks, workflow.next_after]).toEqual([["a", "b", "c"], ["b", "c"], null]);
    const tasks = tasksWithCode(workflow.spec as Parameters<typeof tasksWithCode>[0]);
    expect(tasks.map((t) => [t.name, t.code?.name ?? t.builtin])).toEqual([["a", "square"], ["b", "noop"], ["c", "square"]]);
  });
});
