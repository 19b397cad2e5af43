// Numbers over time from the head's own ring of samples (GET /api/v1/cluster/metrics/history).
import { useMemo, useState } from "react";
import { type MetricsHistory, api } from "../shared/api";
import { TimeChart } from "../shared/Chart";
import { usePolling } from "../shared/useAuth";

export function MetricsView() {
  const [history, setHistory] = useState<MetricsHistory | null>(null);
  usePolling(async () => setHistory(await api.metricsHistory().catch(() => null)), 2000, []);
  const samples = useMemo(() => history?.samples ?? [], [history]);
  const times = useMemo(() => samples.map((s) => s.ts), [samples]);
  const classes = useMemo(() => [...new Set(samples.flatMap((s) => Object.keys(s.queued)))].sort(), [samples]);
  const rate = useMemo(() => [{ label: "tasks/s", values: samples.map((s) => s.tasks_per_s) }], [samples]);
  const running = useMemo(
    () => [
      { label: "running tasks", values: samples.map((s) => s.running_tasks) },
      { label: "reserved CPU", values: samples.map((s) => s.used_cpu) },
      { label: "active runs", values: samples.map((s) => s.active_runs) },
    ],
    [samples],
  );
  const queued = useMemo(
    () =>
      classes.length
        ? classes.map((c) => ({ label: c, values: samples.map((s) => s.queued[c] ?? 0) }))
        : [{ label: "ready tasks", values: samples.map(() => 0) }],
    [classes, samples],
  );
  return (
    <section>
      <h2>Metrics <span className="muted">(one sample every {history?.every_s ?? "…"} s, last half hour)</span></h2>
      <div className="charts">
        <TimeChart title="Tasks per second" times={times} series={rate} />
        <TimeChart title="Running" times={times} series={running} />
        <TimeChart title="Ready tasks per resource class" times={times} series={queued} />
      </div>
    </section>
  );
}
