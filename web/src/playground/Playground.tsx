// The Playground: drag builtin tasks onto a canvas, wire outputs to inputs, set literals, resources and
// policy, validate, run on the cluster and watch each task's state; save, load, export and import the
// `lattice.workflow/v1` document the SDK submits too.
import {
  Background,
  Controls,
  type EdgeChange,
  type NodeChange,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
} from "@xyflow/react";
import { type DragEvent, useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  ApiError,
  type CatalogTask,
  type LogList,
  type TaskPublic,
  api,
  followRun,
} from "../shared/api";
import { previewValue } from "../shared/format";
import { Login } from "../shared/Login";
import { useAuth } from "../shared/useAuth";
import { type CanvasNode, type Graph, type Problem, connect, fromSpec, newNode, toSpec, validate } from "./graph";
import * as H from "./history";
import { TaskNode } from "./TaskNode";

const SAVE_KEY = "lattice.playground.saved";
const DRAG_TYPE = "application/x-lattice-task";
const nodeTypes = { task: TaskNode };

export function Playground() {
  const [authed, login, logout] = useAuth();
  if (!authed) return <Login title="Lattice Playground" onLogin={login} />;
  return (
    <ReactFlowProvider>
      <Designer onLogout={logout} />
    </ReactFlowProvider>
  );
}

interface RunView {
  runId: string;
  state: string;
  tasks: TaskPublic[];
  logs: LogList | null;
}

function Designer({ onLogout }: { onLogout: () => void }) {
  const flow = useReactFlow();
  const [catalog, setCatalog] = useState<CatalogTask[]>([]);
  const [name, setName] = useState("playground");
  const [history, setHistory] = useState(() => H.start<Graph>({ nodes: [], edges: [] }));
  const [problems, setProblems] = useState<Problem[]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const [run, setRun] = useState<RunView | null>(null);
  const stopRun = useRef<() => void>(() => undefined);
  const fileInput = useRef<HTMLInputElement>(null);
  const graph = history.present;
  const selected = graph.nodes.find((n) => n.selected) ?? null;

  useEffect(() => {
    api.catalog().then((c) => setCatalog(c.tasks), (err) => setMessage(`catalog: ${String(err)}`));
    return () => stopRun.current();
  }, []);

  const edit = useCallback((next: Graph) => setHistory((h) => H.commit(h, next)), []);
  const live = useCallback((next: Graph) => setHistory((h) => H.replace(h, next)), []);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!(event.ctrlKey || event.metaKey) || (event.target as HTMLElement)?.closest("input, textarea")) return;
      if (event.key === "z" && !event.shiftKey) (event.preventDefault(), setHistory(H.undo));
      if (event.key === "y" || (event.key === "z" && event.shiftKey)) (event.preventDefault(), setHistory(H.redo));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const invalid = useMemo(() => new Set(problems.map((p) => p.node).filter(Boolean)), [problems]);
  const stateOf = useMemo(() => new Map(run?.tasks.map((t) => [t.name, t.state]) ?? []), [run]);
  const flowNodes = useMemo(
    () =>
      graph.nodes.map((n) => ({
        ...n,
        data: { ...n.data, invalid: invalid.has(n.id), state: stateOf.get(n.data.taskName) },
      })),
    [graph.nodes, invalid, stateOf],
  );

  function onNodesChange(changes: NodeChange[]) {
    const next = { ...graph, nodes: applyNodeChanges(changes, graph.nodes as never) as unknown as CanvasNode[] };
    const structural = changes.some((c) => c.type === "remove" || (c.type === "position" && c.dragging === false));
    if (structural) {
      const removed = new Set(changes.filter((c) => c.type === "remove").map((c) => (c as { id: string }).id));
      next.edges = graph.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target));
      edit(next);
    } else live(next);
  }

  function onEdgesChange(changes: EdgeChange[]) {
    const next = { ...graph, edges: applyEdgeChanges(changes, graph.edges) };
    if (changes.some((c) => c.type === "remove")) edit(next);
    else live(next);
  }

  function add(task: CatalogTask, position?: { x: number; y: number }) {
    const at = position ?? { x: 40 + graph.nodes.length * 40, y: 40 + graph.nodes.length * 60 };
    const node = newNode(task, graph, at);
    edit({ nodes: [...graph.nodes.map((n) => ({ ...n, selected: false })), { ...node, selected: true }], edges: graph.edges });
    setProblems([]);
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    const task = catalog.find((c) => c.name === event.dataTransfer.getData(DRAG_TYPE));
    if (task) add(task, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
  }

  function updateSelected(change: Partial<CanvasNode["data"]>) {
    if (!selected) return;
    const nodes = graph.nodes.map((n) => (n.id === selected.id ? { ...n, data: { ...n.data, ...change } } : n));
    edit({ ...graph, nodes });
  }

  function check(): boolean {
    const found = validate(graph);
    setProblems(found);
    if (found.length === 0) setMessage("The workflow is valid.");
    return found.length === 0;
  }

  async function runWorkflow() {
    if (!check()) return;
    stopRun.current();
    try {
      const created = await api.submitWorkflow(toSpec(name, graph));
      const started = await api.startRun(created.workflow_id, { tags: { source: "playground" } });
      setRun({ runId: started.run_id, state: "running", tasks: [], logs: null });
      setMessage(null);
      const refresh = async (final = false) => {
        const [fresh, tasks, logs] = await Promise.all([
          api.getRun(started.run_id),
          api.getTasks(started.run_id),
          final ? api.getLogs(started.run_id) : Promise.resolve(null),
        ]);
        setRun((r) => ({ runId: started.run_id, state: fresh.state, tasks, logs: logs ?? r?.logs ?? null }));
      };
      let pending: ReturnType<typeof setTimeout> | undefined;
      stopRun.current = followRun(
        started.run_id,
        () => {
          if (!pending) pending = setTimeout(() => ((pending = undefined), void refresh()), 150);
        },
        () => void refresh(true),
      );
    } catch (err) {
      setProblems([{ message: `The head refused the workflow: ${err instanceof ApiError ? err.describe() : String(err)}` }]);
    }
  }

  function save() {
    const positions = Object.fromEntries(graph.nodes.map((n) => [n.data.taskName, n.position]));
    localStorage.setItem(SAVE_KEY, JSON.stringify({ spec: toSpec(name, graph), positions }));
    setMessage(`Saved "${name}" in this browser.`);
  }

  function load() {
    const text = localStorage.getItem(SAVE_KEY);
    if (!text) return setMessage("Nothing saved yet.");
    const saved = JSON.parse(text) as { spec: unknown; positions: Record<string, { x: number; y: number }> };
    openDocument(saved.spec, saved.positions);
  }

  function openDocument(doc: unknown, positions: Record<string, { x: number; y: number }> = {}) {
    try {
      const opened = fromSpec(doc, catalog);
      setName(opened.name);
      const nodes = opened.graph.nodes.map((n) => ({ ...n, position: positions[n.data.taskName] ?? n.position }));
      edit({ nodes, edges: opened.graph.edges });
      setProblems([]);
      setMessage(`Opened "${opened.name}" (${nodes.length} tasks).`);
      setTimeout(() => flow.fitView(), 50);
    } catch (err) {
      setProblems([{ message: `Cannot open it: ${err instanceof Error ? err.message : String(err)}` }]);
    }
  }

  function exportJson() {
    const found = validate(graph).filter((p) => p.message.includes("not valid JSON"));
    if (found.length) return setProblems(found);
    const blob = new Blob([JSON.stringify(toSpec(name, graph), null, 2) + "\n"], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${name || "workflow"}.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async function importFile(file: File) {
    try {
      openDocument(JSON.parse(await file.text()));
    } catch (err) {
      setProblems([{ message: `Cannot import ${file.name}: ${err instanceof Error ? err.message : String(err)}` }]);
    }
  }

  const selectedRun = selected && run ? run.tasks.find((t) => t.name === selected.data.taskName) : undefined;
  const selectedLogs = selected && run?.logs ? run.logs.attempts.filter((a) => a.task === selected.data.taskName) : [];

  return (
    <>
      <header className="top">
        <h1>Lattice Playground</h1>
        <div className="pg-toolbar">
          <input aria-label="workflow name" value={name} onChange={(e) => setName(e.target.value)} style={{ width: 140 }} />
          <button onClick={() => setHistory(H.undo)} disabled={history.past.length === 0}>Undo</button>
          <button onClick={() => setHistory(H.redo)} disabled={history.future.length === 0}>Redo</button>
          <button onClick={check}>Validate</button>
          <button className="primary" onClick={runWorkflow}>Run</button>
          <button onClick={save}>Save</button>
          <button onClick={load}>Load</button>
          <button onClick={exportJson}>Export</button>
          <button onClick={() => fileInput.current?.click()}>Import</button>
          <input
            ref={fileInput}
            type="file"
            accept=".json,application/json"
            data-testid="import-file"
            style={{ display: "none" }}
            onChange={(e) => e.target.files?.[0] && void importFile(e.target.files[0])}
          />
          <button onClick={() => (edit({ nodes: [], edges: [] }), setRun(null), setProblems([]))}>Clear</button>
        </div>
        <span className="spacer" />
        <a href="/board" style={{ color: "#cbd2d9" }}>Board</a>
        <button onClick={onLogout}>Sign out</button>
      </header>
      <div className="pg">
        <aside aria-label="palette">
          <h3 style={{ marginTop: 0 }}>Tasks</h3>
          {catalog.map((task) => (
            <div
              key={task.name}
              className="palette-item"
              draggable
              data-testid={`palette-${task.name}`}
              onDragStart={(e) => {
                e.dataTransfer.setData(DRAG_TYPE, task.name);
                e.dataTransfer.effectAllowed = "move";
              }}
              onDoubleClick={() => add(task)}
              title={task.description}
            >
              {task.title}
              <small>{task.name} · {task.category}</small>
            </div>
          ))}
          <p className="muted">Drag a task onto the canvas (or double-click it).</p>
        </aside>
        <div className="canvas" onDragOver={(e) => (e.preventDefault(), (e.dataTransfer.dropEffect = "move"))} onDrop={onDrop} data-testid="canvas">
          <ReactFlow
            nodes={flowNodes as never}
            edges={graph.edges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={(c) => c.source && c.target && edit(connect(graph, { source: c.source, target: c.target, sourceHandle: c.sourceHandle, targetHandle: c.targetHandle }))}
            deleteKeyCode={["Delete", "Backspace"]}
            proOptions={{ hideAttribution: true }}
          >
            <Background />
            <Controls />
          </ReactFlow>
          {problems.length > 0 && (
            <div className="problems" role="alert" data-testid="problems">
              <strong>Not runnable yet:</strong>
              <ul>{problems.map((p, i) => <li key={i}>{p.message}</li>)}</ul>
            </div>
          )}
        </div>
        <aside className="panel" aria-label="task panel">
          {message && <p className="muted" role="status" data-testid="message">{message}</p>}
          {run && (
            <div className="card" data-testid="run-status">
              Run <code>{run.runId}</code>: <strong data-testid="run-state">{run.state}</strong>{" "}
              <a href={`/board#/runs/${encodeURIComponent(run.runId)}`} data-testid="board-link">open in the Board</a>
            </div>
          )}
          {selected ? (
            <div data-testid="side-panel">
              <h3 style={{ marginTop: 0 }}>{selected.data.title}</h3>
              <div className="field">
                <label htmlFor="task-name">Task name</label>
                <input id="task-name" value={selected.data.taskName} onChange={(e) => updateSelected({ taskName: e.target.value })} />
              </div>
              <h4>Inputs</h4>
              {selected.data.inputs.map((port) => {
                const edge = graph.edges.find((e) => e.target === selected.id && e.targetHandle === port.name);
                const from = edge && graph.nodes.find((n) => n.id === edge.source);
                return (
                  <div className="field" key={port.name}>
                    <label htmlFor={`input-${port.name}`}>
                      {port.name} <span className="muted">{port.type}{port.required ? ", required" : `, default ${JSON.stringify(port.default)}`}</span>
                    </label>
                    {edge ? (
                      <span className="muted">← {from?.data.taskName}.{edge.sourceHandle}</span>
                    ) : port.name in selected.data.opaque ? (
                      <span className="muted">a pickled value from the SDK (kept as is)</span>
                    ) : port.secret ? (
                      <input
                        id={`input-${port.name}`}
                        type="password"
                        autoComplete="off"
                        value={selected.data.literals[port.name] ?? ""}
                        onChange={(e) => updateSelected({ literals: { ...selected.data.literals, [port.name]: e.target.value } })}
                      />
                    ) : (
                      <textarea
                        id={`input-${port.name}`}
                        value={selected.data.literals[port.name] ?? ""}
                        placeholder={port.type === "string" ? "text" : "JSON"}
                        onChange={(e) => updateSelected({ literals: { ...selected.data.literals, [port.name]: e.target.value } })}
                      />
                    )}
                    {port.description && <span className="muted">{port.description}</span>}
                  </div>
                );
              })}
              <h4>Resources and policy</h4>
              <div className="field">
                <label htmlFor="res-cpu">CPUs</label>
                <input id="res-cpu" type="number" min={0} step={0.5} value={selected.data.cpu ?? ""} onChange={(e) => updateSelected({ cpu: e.target.value === "" ? null : Number(e.target.value) })} />
              </div>
              <div className="field">
                <label htmlFor="res-mem">Memory (MB)</label>
                <input id="res-mem" type="number" min={0} value={selected.data.memoryMb ?? ""} onChange={(e) => updateSelected({ memoryMb: e.target.value === "" ? null : Number(e.target.value) })} />
              </div>
              <div className="field">
                <label htmlFor="pol-retries">Retries</label>
                <input id="pol-retries" type="number" min={0} max={100} value={selected.data.retries} onChange={(e) => updateSelected({ retries: Number(e.target.value) || 0 })} />
              </div>
              <div className="field">
                <label htmlFor="pol-timeout">Timeout (s)</label>
                <input id="pol-timeout" type="number" min={0} value={selected.data.timeout ?? ""} onChange={(e) => updateSelected({ timeout: e.target.value === "" ? null : Number(e.target.value) })} />
              </div>
              <div className="field">
                <label htmlFor="pol-network">
                  <input
                    id="pol-network"
                    type="checkbox"
                    checked={selected.data.network === true}
                    onChange={(e) => updateSelected({ network: e.target.checked ? true : null })}
                  />{" "}
                  Network <span className="muted">(for HTTP and LLM calls where the sandbox turns it off)</span>
                </label>
              </div>
              {selected.data.code?.source && (
                <>
                  <h4>Code</h4>
                  <pre>{selected.data.code.source}</pre>
                </>
              )}
              {selectedRun && (
                <>
                  <h4>Last run: {selectedRun.state}</h4>
                  {Object.entries(selectedRun.outputs ?? {}).map(([out, value]) => (
                    <div key={out}>
                      <span className="muted">{out}</span>
                      <pre data-testid={`result-${selected.data.taskName}-${out}`}>{previewValue(value)}</pre>
                    </div>
                  ))}
                  {selectedRun.error && <pre className="traceback">{selectedRun.error.traceback || selectedRun.error.message}</pre>}
                  {selectedLogs.map((a) => (
                    <pre key={a.attempt_id}>{a.stdout || a.stderr || "(no output)"}</pre>
                  ))}
                </>
              )}
            </div>
          ) : (
            <p className="muted">Select a task to set its inputs, resources and policy.</p>
          )}
        </aside>
      </div>
    </>
  );
}
