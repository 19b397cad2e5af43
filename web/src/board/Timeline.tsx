// A Gantt chart of the run's tasks: one bar per task from start to finish, coloured by state, by node.
import type { TaskPublic } from "../shared/api";
import { formatDuration, stateColor } from "../shared/format";

export function Timeline({ tasks, now = Date.now() / 1000 }: { tasks: TaskPublic[]; now?: number }) {
  const started = tasks.filter((t) => t.started_at);
  if (started.length === 0) return <p className="muted">no task has started yet</p>;
  const begin = Math.min(...started.map((t) => t.started_at as number));
  const end = Math.max(...started.map((t) => t.finished_at ?? now), begin + 0.001);
  const span = end - begin;
  const byNode = [...started].sort(
    (a, b) => (a.node_id ?? "").localeCompare(b.node_id ?? "") || (a.started_at as number) - (b.started_at as number),
  );
  return (
    <div data-testid="timeline">
      {byNode.map((t) => {
        const left = (((t.started_at as number) - begin) / span) * 100;
        const width = Math.max(0.5, (((t.finished_at ?? now) - (t.started_at as number)) / span) * 100);
        return (
          <div className="gantt-row" key={t.name}>
            <span className="gantt-label" title={`${t.name} on ${t.node_id ?? "?"}`}>
              {t.name} <span className="muted">{(t.node_id ?? "").slice(0, 8)}</span>
            </span>
            <span className="gantt-track">
              <span
                className="gantt-bar"
                style={{ left: `${left}%`, width: `${width}%`, background: stateColor(t.state) }}
                title={formatDuration(t.duration_s)}
              />
            </span>
          </div>
        );
      })}
      <p className="muted">{formatDuration(span)} from the first start to the last finish</p>
    </div>
  );
}
