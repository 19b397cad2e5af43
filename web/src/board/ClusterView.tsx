// The cluster: every node with capacity, what Lattice reserved there, its live utilization (CPU, memory,
// GPUs, sampled on the node every 2 s) and the queues with why each waiting run is not placed yet
// (GET /api/v1/cluster/nodes and /cluster/queues, refreshed every 2 s).
import { useState } from "react";
import { type ClusterQueues, type NodePublic, api } from "../shared/api";
import { usePolling } from "../shared/useAuth";

function Usage({ used, total, unit }: { used: number; total: number; unit: string }) {
  const share = total > 0 ? Math.min(100, (used / total) * 100) : 0;
  return (
    <span>
      <span className="bar"><span style={{ width: `${share}%` }} /></span>{" "}
      {Math.round(used * 100) / 100} / {Math.round(total * 100) / 100} {unit}
    </span>
  );
}

export function ClusterView() {
  const [nodes, setNodes] = useState<NodePublic[]>([]);
  const [queues, setQueues] = useState<ClusterQueues | null>(null);
  const [error, setError] = useState<string | null>(null);
  usePolling(
    async () => {
      try {
        const [list, q] = await Promise.all([api.nodes(), api.queues()]);
        setNodes(list.nodes);
        setQueues(q);
        setError(null);
      } catch (err) {
        setError(String(err instanceof Error ? err.message : err));
      }
    },
    2000,
    [],
  );
  return (
    <section>
      <h2>Nodes</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <table data-testid="nodes-table">
        <thead>
          <tr><th>Node</th><th>State</th><th>CPU reserved</th><th>Memory reserved</th><th>Live CPU</th><th>Live memory</th><th>GPUs</th><th>Running</th><th>Labels</th></tr>
        </thead>
        <tbody>
          {nodes.map((n) => (
            <tr key={n.node_id} data-testid={`node-${n.node_id}`}>
              <td>{n.node_id.slice(0, 12)}<div className="muted">{n.address}</div></td>
              <td>{n.alive ? "alive" : "dead"}</td>
              <td><Usage used={n.used.cpu ?? 0} total={n.total.cpu ?? 0} unit="CPU" /></td>
              <td><Usage used={n.used.memory_mb ?? 0} total={n.total.memory_mb ?? 0} unit="MB" /></td>
              <td data-testid={`node-cpu-${n.node_id}`}>
                {n.usage ? <Usage used={n.usage.cpu_percent} total={100} unit="%" /> : <span className="muted">sampling…</span>}
              </td>
              <td data-testid={`node-mem-${n.node_id}`}>
                {n.usage ? <Usage used={n.usage.memory_used_mb} total={n.usage.memory_total_mb} unit="MB" /> : "—"}
              </td>
              <td>
                {n.gpus.length === 0
                  ? "none"
                  : n.gpus.map((g, i) => {
                      const live = n.usage?.gpus?.find((u) => u.index === (g.index ?? i));
                      return (
                        <div key={i} data-testid={`node-gpu-${n.node_id}-${i}`}>
                          {String(g.name ?? g.model ?? `GPU ${i}`)}{" "}
                          {live ? (
                            <>
                              <Usage used={live.memory_used_mb} total={live.memory_total_mb} unit="MB" /> · {live.utilization_percent}% busy
                            </>
                          ) : (
                            <span className="muted">{JSON.stringify(g)}</span>
                          )}
                        </div>
                      );
                    })}
              </td>
              <td>{n.running_tasks}</td>
              <td className="muted">{Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Queues <span className="muted">({queues?.scheduling ?? "…"} scheduling)</span></h2>
      <table data-testid="queues-table">
        <thead>
          <tr><th>Tenant</th><th>Run</th><th>Ready tasks</th><th>Held</th><th>Why it waits</th></tr>
        </thead>
        <tbody>
          {queues?.tenants.flatMap((t) =>
            t.runs.map((r) => (
              <tr key={`${t.tenant}/${r.run_id}`}>
                <td>{t.tenant}</td>
                <td><a href={`#/runs/${encodeURIComponent(r.run_id)}`}>{r.run_id}</a></td>
                <td>{Object.entries(r.queued).map(([k, v]) => `${k}: ${v}`).join(", ") || "0"}</td>
                <td className="muted">{JSON.stringify(r.held)}</td>
                <td>{r.waiting ? `${r.waiting}${r.waiting_detail ? ` — ${r.waiting_detail}` : ""}` : "—"}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
      {queues && queues.tenants.every((t) => t.runs.length === 0) && <p className="muted">Nothing is queued.</p>}
    </section>
  );
}
