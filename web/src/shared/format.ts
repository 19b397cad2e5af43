// Display helpers: durations, times, and previews of task values that never decode a pickle.

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function formatTime(ts: number | null | undefined): string {
  if (!ts) return "—";
  return new Date(ts * 1000).toLocaleString();
}

export function runDuration(run: { started_at?: number | null; finished_at?: number | null }, now = Date.now() / 1000) {
  if (!run.started_at) return null;
  return (run.finished_at ?? now) - run.started_at;
}

/** A wire value ({encoding, value} or {encoding, data}) as text: JSON pretty-printed, anything else its size. */
export function previewValue(wire: Record<string, unknown> | undefined | null): string {
  if (!wire) return "—";
  if (wire.encoding === "json" || "value" in wire) return JSON.stringify(wire.value, null, 2) ?? "null";
  const data = typeof wire.data === "string" ? wire.data : "";
  const bytes = Math.floor((data.length * 3) / 4) - (data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0);
  return `<${String(wire.encoding ?? "binary")} value, ${bytes} bytes (not decoded here)>`;
}

export const STATE_COLORS: Record<string, string> = {
  pending: "#9aa5b1",
  ready: "#c9a227",
  scheduled: "#c9a227",
  queued: "#c9a227",
  running: "#2f80ed",
  retrying: "#f2994a",
  succeeded: "#27ae60",
  failed: "#eb5757",
  cancelled: "#7f8c8d",
  skipped: "#bdc3c7",
};

export function stateColor(state: string | null | undefined): string {
  return STATE_COLORS[state ?? "pending"] ?? "#9aa5b1";
}
