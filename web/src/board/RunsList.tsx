// Every run, newest first: filtered, searched and paged by the head (GET /api/v1/runs), refreshed live.
import { useState } from "react";
import { type RunList, api } from "../shared/api";
import { formatDuration, formatTime, runDuration } from "../shared/format";
import { StateBadge } from "../shared/StateBadge";
import { usePolling } from "../shared/useAuth";

const PAGE = 25;
const STATES = ["", "pending", "running", "succeeded", "failed", "cancelled"];

export function RunsList() {
  const [state, setState] = useState("");
  const [search, setSearch] = useState("");
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<RunList | null>(null);
  const [error, setError] = useState<string | null>(null);

  usePolling(
    async () => {
      try {
        setPage(await api.listRuns({ state, q: search.trim(), limit: PAGE, offset }));
        setError(null);
      } catch (err) {
        setError(String(err instanceof Error ? err.message : err));
      }
    },
    2000,
    [state, search, offset],
  );

  const total = page?.total ?? 0;
  return (
    <section>
      <div className="toolbar">
        <h2 style={{ margin: 0, marginRight: 12 }}>Runs</h2>
        <select aria-label="state" value={state} onChange={(e) => (setState(e.target.value), setOffset(0))}>
          {STATES.map((s) => (
            <option key={s} value={s}>{s || "any state"}</option>
          ))}
        </select>
        <input
          aria-label="search"
          placeholder="search id, workflow, tags"
          value={search}
          onChange={(e) => (setSearch(e.target.value), setOffset(0))}
        />
        <span className="muted" data-testid="runs-total">{total} runs</span>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <table data-testid="runs-table">
        <thead>
          <tr>
            <th>Run</th><th>Workflow</th><th>State</th><th>Tasks</th><th>Tags</th><th>Started</th><th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {page?.runs.map((run) => (
            <tr key={run.run_id} data-testid={`run-row-${run.run_id}`}>
              <td><a href={`#/runs/${encodeURIComponent(run.run_id)}`}>{run.run_id}</a></td>
              <td>{run.workflow_name}</td>
              <td><StateBadge state={run.state} /></td>
              <td className="muted" data-testid={`run-counts-${run.run_id}`}>
                {Object.entries(run.task_counts ?? {}).map(([state, n]) => `${n} ${state}`).join(", ")}
              </td>
              <td className="muted">{Object.entries(run.tags).map(([k, v]) => `${k}=${v}`).join(", ")}</td>
              <td>{formatTime(run.started_at ?? run.created_at)}</td>
              <td>{formatDuration(runDuration(run))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="pager">
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
        <span className="muted">
          {total === 0 ? 0 : offset + 1}–{Math.min(offset + PAGE, total)} of {total}
        </span>
        <button disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>Next</button>
      </div>
    </section>
  );
}
