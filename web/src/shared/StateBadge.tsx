import { stateColor } from "./format";

export function StateBadge({ state }: { state: string }) {
  return (
    <span className="badge" data-state={state} style={{ background: stateColor(state) }}>
      {state}
    </span>
  );
}
