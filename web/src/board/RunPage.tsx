// One run: its DAG coloured live over the run's WebSocket (resuming by sequence number), a timeline of
// attempts by node, and per task its inputs/outputs previews, logs, error with traceback and timings.
import { useCallback, useEffect, useMemo, useState } from "react";
import {
  ApiError,
  type LogList,
  type RunEvent,
  type RunPublic,
  type TaskPublic,
  type WorkflowPublic,
  api,
  followRun,
} from "../shared/api";
import { Dag } from "../shared/Dag";
import { formatDuration, formatTime, previewValue, stateColor } from "../shared/format";
import { type TaskSpec, type WorkflowSpec, specEdges, tasksWithCode } from "../shared/spec";
import { StateBadge } from "../shared/StateBadge";
import { Timeline } from "./Timeline";

export function RunPage({ runId }: { runId: string }) {
  const [run, setRun] = useState<RunPublic | null>(null);
  const [tasks, setTasks] = useState<TaskPublic[]>([]);
  const [workflow, setWorkflow] = useState<WorkflowPublic | null>(null);
  const [logs, setLogs] = useState<LogList | null>(null);
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [live, setLive] = useState<LiveLogs>({});
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      const [fresh, detail, attempts] = await Promise.all([api.getRun(runId), api.getTasks(runId), api.getLogs(runId)]);
      setRun(fresh);
      setTasks(detail);
      setLogs(attempts);
      setError(null);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    }
  }, [runId]);

  useEffect(() => {
    setEvents([]);
    setLive({});
    setSelected(null);
    void refresh();
    let pending: ReturnType<typeof setTimeout> | undefined;
    const stop = followRun(
      runId,
      (event) => {
        setEvents((list) => [...list.slice(-499), event]);
        if (event.type === "task_log" && event.data?.live) setLive((logs) => appendLiveLog(logs, event));
        if (!pending) pending = setTimeout(() => ((pending = undefined), void refresh()), 150);
      },
      () => void refresh(),
    );
    return () => {
      stop();
      if (pending) clearTimeout(pending);
    };
  }, [runId, refresh]);

  useEffect(() => {
    if (run && (!workflow || workflow.workflow_id !== run.workflow_id)) {
      api.getWorkflow(run.workflow_id).then(setWorkflow, () => undefined);
    }
  }, [run, workflow]);

  const specTasks = useMemo(() => tasksWithCode((workflow?.spec ?? {}) as Partial<WorkflowSpec>), [workflow]);
  const edges = useMemo(() => specEdges({ tasks: specTasks }), [specTasks]);
  const dagTasks = useMemo(
    () =>
      (tasks.length ? tasks : specTasks.map((t) => ({ name: t.name, state: "pending" }))).map((t) => ({
        name: t.name,
        state: t.state,
      })),
    [tasks, specTasks],
  );

  async function cancel() {
    try {
      await api.cancelRun(runId);
      setNotice("Cancel requested.");
      void refresh();
    } catch (err) {
      setNotice(err instanceof ApiError ? err.describe() : String(err));
    }
  }

  async function rerun() {
    if (!run) return;
    try {
      const created = await api.startRun(run.workflow_id, { tags: run.tags, priority: run.priority, inputs: run.inputs });
      location.hash = `#/runs/${encodeURIComponent(created.run_id)}`;
    } catch (err) {
      setNotice(err instanceof ApiError ? err.describe() : String(err));
    }
  }

  if (error && !run) return <p className="error" role="alert">{error}</p>;
  if (!run) return <p className="muted">Loading run {runId}…</p>;
  const finished = ["succeeded", "failed", "cancelled"].includes(run.state);
  const task = tasks.find((t) => t.name === selected) ?? null;
  const spec = specTasks.find((t) => t.name === selected) ?? null;
  return (
    <section>
      <div className="toolbar">
        <a href="#/runs">← Runs</a>
        <h2 style={{ margin: 0 }}>
          {run.workflow_name} <span className="muted">{run.run_id}</span>
        </h2>
        <span data-testid="run-state">
          <StateBadge state={run.state} />
        </span>
        <span className="muted">started {formatTime(run.started_at ?? run.created_at)}</span>
        <span className="spacer" style={{ flex: 1 }} />
        <button className="danger" onClick={cancel} disabled={finished}>Cancel</button>
        <button onClick={rerun}>Re-run</button>
      </div>
      {notice && <p className="muted" role="status">{notice}</p>}
      {run.error && (
        <div className="card" data-testid="run-error">
          <strong className="error">
            {run.failed_task ? `task ${run.failed_task}: ` : ""}
            {run.error.type}: {run.error.message}
          </strong>
        </div>
      )}
      <div className="grid2">
        <div>
          <Dag tasks={dagTasks} edges={edges} selected={selected} onSelect={setSelected} />
          <div className="card">
            <h3 style={{ marginTop: 0 }}>Timeline</h3>
            <Timeline tasks={tasks} />
          </div>
          <div className="card">
            <h3 style={{ marginTop: 0 }}>Events</h3>
            <pre data-testid="events">
              {events.map((e) => `${e.seq} ${e.type}${e.task ? ` ${e.task}` : ""}`).join("\n") || "—"}
            </pre>
          </div>
        </div>
        <div>
          <div className="card" data-testid="task-panel">
            {task ? (
              <TaskDetail task={task} spec={spec} logs={logs} live={live[task.name] ?? null} />
            ) : (
              <>
                <h3 style={{ marginTop: 0 }}>Tasks</h3>
                <table>
                  <tbody>
                    {tasks.map((t) => (
                      <tr key={t.name} onClick={() => setSelected(t.name)} style={{ cursor: "pointer" }}>
                        <td>{t.name}</td>
                        <td><StateBadge state={t.state} /></td>
                        <td>{formatDuration(t.duration_s)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <p className="muted">Click a task (here or in the graph) for its inputs, outputs, logs and error.</p>
              </>
            )}
          </div>
        </div>
      </div>
    </section>
  );
}

/** Live output per task: the latest attempt's text as its ``task_log`` events with ``live`` arrive. */
export type LiveLogs = Record<string, { attemptId: string; text: string; cut: boolean }>;
/** The browser keeps at most this many characters of one task's live output (the head caps it at 1 MiB). */
export const LIVE_KEEP_CHARS = 256 * 1024;

export function appendLiveLog(logs: LiveLogs, event: RunEvent): LiveLogs {
  const task = event.task;
  const data = event.data ?? {};
  if (!task || typeof data.text !== "string" || typeof data.attempt_id !== "string") return logs;
  const previous = logs[task];
  const same = previous && previous.attemptId === data.attempt_id;
  let text = (same ? previous.text : "") + data.text;
  let cut = same ? previous.cut : false;
  if (text.length > LIVE_KEEP_CHARS) {
    text = text.slice(text.length - LIVE_KEEP_CHARS);
    cut = true;
  }
  return { ...logs, [task]: { attemptId: data.attempt_id, text, cut } };
}

function TaskDetail({ task, spec, logs, live }: {
  task: TaskPublic; spec: TaskSpec | null; logs: LogList | null; live: LiveLogs[string] | null;
}) {
  const attempts = logs?.attempts.filter((a) => a.task === task.name) ?? [];
  const liveOpen = live !== null && !attempts.some((a) => a.attempt_id === live.attemptId);
  return (
    <div data-testid={`task-detail-${task.name}`}>
      <h3 style={{ marginTop: 0 }}>
        {task.name} <StateBadge state={task.state} />
      </h3>
      <table>
        <tbody>
          <tr><th>Attempt</th><td>{task.attempt}</td></tr>
          <tr><th>Node</th><td>{task.node_id ?? "—"}</td></tr>
          <tr><th>Queued</th><td>{formatTime(task.queued_at)}</td></tr>
          <tr><th>Duration</th><td>{formatDuration(task.duration_s)}</td></tr>
          <tr><th>Resources</th><td><code>{JSON.stringify(spec?.resources ?? {})}</code></td></tr>
          <tr><th>Task</th><td>{spec?.builtin ? `builtin ${spec.builtin}` : (spec?.code?.name ?? "—")}</td></tr>
        </tbody>
      </table>
      <h4>Inputs</h4>
      {Object.entries(spec?.inputs ?? {}).map(([name, input]) => (
        <div key={name}>
          <span className="muted">{name}</span>
          <pre>{input.task ? `← ${input.task}.${input.output}` : previewValue(input as Record<string, unknown>)}</pre>
        </div>
      ))}
      <h4>Outputs</h4>
      {task.outputs && Object.keys(task.outputs).length ? (
        Object.entries(task.outputs).map(([name, value]) => (
          <div key={name}>
            <span className="muted">{name}</span>
            <pre data-testid={`output-${task.name}-${name}`}>{previewValue(value)}</pre>
          </div>
        ))
      ) : (
        <p className="muted">none yet</p>
      )}
      {task.error && (
        <>
          <h4 className="error">Error</h4>
          <p className="error">{task.error.type}: {task.error.message}</p>
          <pre className="traceback" data-testid="traceback">{task.error.traceback || "(no traceback)"}</pre>
        </>
      )}
      {liveOpen && (
        <>
          <h4>Live output <span className="muted">attempt {live.attemptId.split(":").pop()}, as it runs</span></h4>
          {live.cut && <p className="muted">only the last {LIVE_KEEP_CHARS / 1024} KiB are shown</p>}
          <pre className="live-log" data-testid={`live-log-${task.name}`}>{live.text}</pre>
        </>
      )}
      <h4>Attempts and logs</h4>
      {attempts.length === 0 && <p className="muted">no attempt has finished yet</p>}
      {attempts.map((a) => (
        <div key={a.attempt_id} className="card">
          <div>
            #{a.attempt} <StateBadge state={a.state} /> <span className="muted">node {a.node_id ?? "—"} · pid {a.worker_pid ?? "—"}</span>
          </div>
          <span className="muted">stdout</span>
          <pre data-testid={`stdout-${task.name}`}>{a.stdout || "—"}</pre>
          {a.stderr && (
            <>
              <span className="muted">stderr</span>
              <pre style={{ color: stateColor("failed") }}>{a.stderr}</pre>
            </>
          )}
        </div>
      ))}
    </div>
  );
}
