// A task on the canvas: one input handle per input (left), one output handle per output (right).
import { Handle, type NodeProps, Position } from "@xyflow/react";
import { stateColor } from "../shared/format";
import type { TaskData } from "./graph";

export function TaskNode({ data, selected }: NodeProps & { data: TaskData }) {
  const rows = Math.max(data.inputs.length, data.outputs.length, 1);
  return (
    <div
      className={`task-node${data.invalid ? " invalid" : ""}`}
      data-testid={`node-${data.taskName}`}
      data-state={data.state ?? ""}
      style={{ borderColor: data.invalid ? undefined : data.state ? stateColor(data.state) : selected ? "#2f6fdb" : undefined }}
    >
      <header>
        <strong>{data.taskName}</strong>
        <span className="muted">{data.state ?? data.title}</span>
      </header>
      <div className="ports">
        <div>
          {data.inputs.map((port) => (
            <div className="port" key={port.name} title={`${port.type}${port.required ? ", required" : ""}`}>
              <Handle type="target" position={Position.Left} id={port.name} />
              {port.name}
              {port.required ? "*" : ""}
            </div>
          ))}
        </div>
        <div>
          {data.outputs.map((port) => (
            <div className="port out" key={port.name} title={port.type}>
              {port.name}
              <Handle type="source" position={Position.Right} id={port.name} />
            </div>
          ))}
        </div>
      </div>
      <div style={{ height: rows > 0 ? 0 : 20 }} />
    </div>
  );
}
